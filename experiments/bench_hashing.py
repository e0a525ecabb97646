"""Benchmark groups for sparse outputs and Hamming search (registered in bench.GROUPS).

- `outputs`: expand-and-sparsify to the indices form, x (4096, 784) -> m = 8192, top 5%,
  against drawing W plus the jax matmul alone (the floor of the dense computation); fly with
  packed output (c = 6) against the dense Gaussian projection of the same shape.
- `hamming`: exact k-NN (k = 10) of 1,000 packed 256-bit queries in 100,000 and 1,000,000
  database codes: `hashing.hamming_knn` against FAISS `IndexBinaryFlat` (faiss-cpu, the
  `bench` extra) and numpy (`np.bitwise_count` + argpartition), timed alternately
  (`bench.timed_pair`), with the neighbour sets compared and the peak RSS of each library
  measured in a fresh process (VmHWM after the search minus VmRSS once the data and the
  library are loaded, and for esparse compiled; the peak is reset through
  /proc/self/clear_refs just before the search).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from esparse import hashing, projection

WORDS, QUERIES, NEIGHBORS = 8, 1000, 10  # 256-bit codes
_NUMPY_CHUNK = 8  # queries per numpy step: (8, n, 4) uint64 temporaries


def outputs() -> list[dict]:
    """Sparse outputs against the dense floor (bench's kernel shapes)."""
    from experiments.bench import BATCH, D_IN, FAN_IN, FRACTION, M, row, timed_pair

    g, rows = "outputs", []
    key = jax.random.key(1)
    x = jax.random.normal(jax.random.key(0), (BATCH, D_IN))
    floor = jax.jit(lambda a: a @ projection.gaussian(key, D_IN, M))  # draw W + matmul
    es_idx = jax.jit(
        lambda a: projection.expand_and_sparsify(key, a, M, FRACTION, output="indices")
    )
    es_dense = jax.jit(lambda a: projection.expand_and_sparsify(key, a, M, FRACTION))
    ours, peer = timed_pair(lambda: es_idx(x), lambda: floor(x))
    rows.append(
        row(
            g,
            "e&s gaussian, output=indices",
            ours,
            "draw W + matmul",
            peer,
            peer / ours,
            "target ratio <= 1.1",
        )  # fmt: skip
    )
    ours, peer = timed_pair(lambda: es_dense(x), lambda: floor(x))
    rows.append(row(g, "e&s gaussian, output=dense", ours, "draw W + matmul", peer, peer / ours))
    w = projection.gaussian(key, D_IN, M)
    dense = jax.jit(lambda a, b: a @ b)
    fly_packed = jax.jit(
        lambda a: projection.expand_and_sparsify(
            key, a, M, FRACTION, "fly", output="packed", c=FAN_IN
        )
    )
    ours, peer = timed_pair(lambda: fly_packed(x), lambda: dense(x, w))
    rows.append(
        row(
            g,
            f"e&s fly c={FAN_IN}, output=packed",
            ours,
            "dense gaussian matmul",
            peer,
            None,
            f"speed-up {peer / ours:.1f}x (target >= 5x)",
        )  # fmt: skip
    )
    return rows


def _codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, (n, WORDS), dtype=np.uint32)


def numpy_knn(database: np.ndarray, queries: np.ndarray, k: int) -> tuple:
    """numpy peer: popcount distances (np.bitwise_count on uint64 words) per chunk of queries,
    argpartition for the k smallest, then a stable order by (distance, index)."""
    db64, q64 = database.view(np.uint64), queries.view(np.uint64)
    dist, idx = [], []
    for s in range(0, len(q64), _NUMPY_CHUNK):
        d = np.bitwise_count(q64[s : s + _NUMPY_CHUNK, None, :] ^ db64[None]).sum(-1, np.int32)
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(d, part, 1).max(1, keepdims=True)
        for row_d, row_kth in zip(d, kth, strict=True):  # all ties at the k-th, lowest first
            cand = np.flatnonzero(row_d <= row_kth)
            order = cand[np.lexsort((cand, row_d[cand]))][:k]
            dist.append(row_d[order])
            idx.append(order)
    return np.stack(dist), np.stack(idx)


def _faiss_index(database: np.ndarray):
    import faiss

    index = faiss.IndexBinaryFlat(32 * WORDS)
    index.add(database.view(np.uint8))
    return index


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
from experiments import bench_hashing as bh
def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
lib, n = sys.argv[1], int(sys.argv[2])
db, qs = bh._codes(n, 0), bh._codes(bh.QUERIES, 1)
if lib == "esparse":
    import jax, jax.numpy as jnp
    from esparse import hashing
    dj, qj = jnp.asarray(db), jnp.asarray(qs)
    run = lambda: jax.block_until_ready(hashing.hamming_knn(dj, qj, bh.NEIGHBORS))
    run()  # compile first: its memory is not the search's
elif lib == "faiss":
    index = bh._faiss_index(db)
    run = lambda: index.search(qs.view(np.uint8), bh.NEIGHBORS)
else:
    run = lambda: bh.numpy_knn(db, qs, bh.NEIGHBORS)
open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
base = status_mb("VmRSS")
run()
print(json.dumps({"base_mb": base, "peak_mb": status_mb("VmHWM")}))
"""


def _peak_rss(lib: str, n: int) -> dict:
    """Peak RSS (MB) of one search by `lib` in a fresh process, and the RSS before it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1])] + sys.path)
    done = subprocess.run(
        [sys.executable, "-c", _RSS_CODE, lib, str(n)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mem(rss: dict, lib: str) -> str:
    r = rss[lib]
    return f"{lib} peak RSS +{r['peak_mb'] - r['base_mb']:.0f} MB (peak {r['peak_mb']:.0f})"


def _hamming_rows(n: int, with_faiss: bool) -> list[dict]:
    """Rows of one database size: esparse vs FAISS (if importable) and vs numpy."""
    from experiments.bench import row, timed_pair

    db, qs = _codes(n, 0), _codes(QUERIES, 1)
    dj, qj = jnp.asarray(db), jnp.asarray(qs)
    knn = jax.jit(lambda a, b: hashing.hamming_knn(a, b, NEIGHBORS))
    ours = tuple(np.asarray(v) for v in knn(dj, qj))
    libs = ("esparse", "faiss", "numpy") if with_faiss else ("esparse", "numpy")
    rss = {lib: _peak_rss(lib, n) for lib in libs}
    name, rows = f"k-NN k={NEIGHBORS}, {QUERIES} x {n:,} 256-bit", []
    if with_faiss:
        index = _faiss_index(db)
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
    try:
        import faiss  # noqa: F401  (optional peer)

        with_faiss = True
    except ImportError:
        with_faiss = False
    return [r for n in (100_000, 1_000_000) for r in _hamming_rows(n, with_faiss)]
