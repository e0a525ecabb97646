"""Benchmark group `hamming`: exact k-NN (k = 10) of 1,000 packed 256-bit queries in 100,000
and 1,000,000 database codes: `hashing.hamming_knn` against FAISS `IndexBinaryFlat`
(faiss-cpu, the `bench` extra) and numpy (`np.bitwise_count` + argpartition), timed
alternately, with the neighbour sets compared and the peak RSS of each library measured in a
fresh process (VmHWM after the search minus VmRSS once the data and the library are loaded,
and for esparse compiled; the peak is reset through /proc/self/clear_refs just before the
search)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from esparse import hashing
from experiments.bench.harness import in_fresh_process, row, timed_pair
from experiments.bench.peers import faiss_available, faiss_index, numpy_knn

WORDS, QUERIES, NEIGHBORS = 8, 1000, 10  # 256-bit codes


def codes(n: int, seed: int) -> np.ndarray:
    """n random packed codes of WORDS uint32 words, from numpy's generator seeded `seed`."""
    return np.random.default_rng(seed).integers(0, 2**32, (n, WORDS), dtype=np.uint32)


def _agreement(ref: tuple, other: tuple) -> str:
    """Equal distance lists, and equal neighbour sets below each row's k-th distance."""
    same_d = np.array_equal(ref[0], other[0])
    sets = all(
        set(ri[rd < rd[-1]]) == set(oi[rd < rd[-1]])
        for rd, ri, oi in zip(ref[0], ref[1], other[1], strict=True)
    )
    exact = int(np.sum(np.all(ref[1] == other[1], axis=1)))
    return f"distances equal {same_d}, sets equal up to ties {sets}, identical lists {exact}"


_RSS_CODE = """
import json, sys, numpy as np
from experiments.bench import hamming as bh, peers
lib, n = sys.argv[1], int(sys.argv[2])
db, qs = bh.codes(n, 0), bh.codes(bh.QUERIES, 1)
if lib == "esparse":
    import jax, jax.numpy as jnp
    from esparse import hashing
    dj, qj = jnp.asarray(db), jnp.asarray(qs)
    knn = lambda: hashing.hamming_knn(queries=qj, database=dj, k=bh.NEIGHBORS)
    run = lambda: jax.block_until_ready(knn())
    run()  # compile first: its memory is not the search's
elif lib == "faiss":
    index = peers.faiss_index(db)
    run = lambda: index.search(qs.view(np.uint8), bh.NEIGHBORS)
else:
    run = lambda: peers.numpy_knn(db, qs, bh.NEIGHBORS)
open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
base = status_mb("VmRSS")
run()
print(json.dumps({"base_mb": base, "peak_mb": status_mb("VmHWM")}))
"""


def _peak_rss(lib: str, n: int) -> dict:
    """Peak RSS (MB) of one search by `lib` in a fresh process, and the RSS before it."""
    return in_fresh_process(_RSS_CODE, lib, str(n))


def _mem(rss: dict, lib: str) -> str:
    r = rss[lib]
    return f"{lib} peak RSS +{r['peak_mb'] - r['base_mb']:.0f} MB (peak {r['peak_mb']:.0f})"


def _hamming_rows(n: int, with_faiss: bool) -> list[dict]:
    """Rows of one database size: esparse vs FAISS (if importable) and vs numpy."""
    db, qs = codes(n, 0), codes(QUERIES, 1)
    dj, qj = jnp.asarray(db), jnp.asarray(qs)
    knn = jax.jit(lambda a, b: hashing.hamming_knn(queries=b, database=a, k=NEIGHBORS))
    ours = tuple(np.asarray(v) for v in knn(dj, qj))
    libs = ("esparse", "faiss", "numpy") if with_faiss else ("esparse", "numpy")
    rss = {lib: _peak_rss(lib, n) for lib in libs}
    name, rows = f"k-NN k={NEIGHBORS}, {QUERIES} x {n:,} 256-bit", []
    if with_faiss:
        index = faiss_index(db)
        search = lambda: index.search(qs.view(np.uint8), NEIGHBORS)  # noqa: E731
        ms, peer_ms = timed_pair(lambda: knn(dj, qj), search, 5)
        note = f"{_agreement(search(), ours)}; {_mem(rss, 'esparse')}; {_mem(rss, 'faiss')}"
        rows.append(row("hamming", name, ms, "faiss", peer_ms, None, note))
    else:
        rows.append(row("hamming", name, None, "faiss", None, None, "faiss-cpu not installed"))
    reps = 3 if n <= 100_000 else 1
    peer = lambda: numpy_knn(db, qs, NEIGHBORS)  # noqa: E731
    ms, peer_ms = timed_pair(lambda: knn(dj, qj), peer, reps)
    note = f"{_agreement(peer(), ours)}; {_mem(rss, 'numpy')}"
    rows.append(row("hamming", name, ms, "numpy", peer_ms, None, note))
    return rows


def hamming() -> list[dict]:
    """k-NN of 1,000 packed 256-bit queries: esparse vs FAISS IndexBinaryFlat vs numpy."""
    with_faiss = faiss_available()
    return [r for n in (100_000, 1_000_000) for r in _hamming_rows(n, with_faiss)]
