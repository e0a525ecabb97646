"""Benchmark groups `ceiling` and `kernels`: the machine's matmul ceiling, and
expand-and-sparsify and its parts, x (4096, 784) -> m = 8192, top 5% per row, against numpy
and torch on the same arrays; a blocked expansion to 10^6 units for its peak memory.

ceiling_fraction: for `ceiling`, jax's GFLOP/s over the best of the three libraries; for
`kernels`, the jax matmul alone over the kernel's time (1 means the kernel costs no more than
its matmul)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import esparse
from esparse import projection, selection, sparsify
from experiments.bench.harness import in_fresh_process, row, timed, timed_pair
from experiments.bench.peers import numpy_kwta, torch_kwta, torch_or_none

BATCH, D_IN, M, FRACTION, FAN_IN = 4096, 784, 8192, 0.05, 6  # the kernel shapes
K = int(round(FRACTION * M))
FUSED_ROWS = 512  # rows per fused block, as projection's on CPU


def ceiling() -> list[dict]:
    """float32 matmul 2048^3 GFLOP/s: the practical ceiling of this machine."""
    torch = torch_or_none()
    n = 2048
    flop = 2 * n**3
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    aj = jnp.asarray(a)
    mm = jax.jit(lambda u: u @ u)
    ms = dict(zip(("jax", "numpy"), timed_pair(lambda: mm(aj), lambda: a @ a), strict=True))
    if torch is not None:
        at = torch.from_numpy(a)
        ms["torch"] = timed(lambda: at @ at)
    gflops = {lib: flop / (t * 1e6) for lib, t in ms.items()}
    best = max(gflops.values())
    rows = []
    for peer in ("numpy", "torch"):
        note = f"jax {gflops['jax']:.0f} GFLOP/s"
        if peer in ms:
            note += f", {peer} {gflops[peer]:.0f} GFLOP/s"
            rows.append(row("ceiling", "matmul 2048^3 f32", ms["jax"], peer, ms[peer], None, note))
        else:
            rows.append(
                row(
                    "ceiling",
                    "matmul 2048^3 f32",
                    ms["jax"],
                    "torch",
                    None,
                    None,
                    "torch not importable",
                )
            )
    for r in rows:
        r["ceiling_fraction"] = gflops["jax"] / best
    return rows


def _blocked_memory(m: int, batch: int, block_size: int) -> dict:
    """Run a blocked expand-and-sparsify to m units in a fresh process: ms and peak RSS (MB)."""
    code = f"""
import json, time, jax, jax.numpy as jnp
from esparse import expand_and_sparsify
x = jax.random.normal(jax.random.key(0), ({batch}, {D_IN}))
f = lambda: expand_and_sparsify(
    jax.random.key(1), x, {m}, fraction={FRACTION}, block_size={block_size})
base = status_mb("VmHWM")
jax.block_until_ready(f())
t = time.perf_counter(); out = jax.block_until_ready(f()); ms = 1e3 * (time.perf_counter() - t)
print(json.dumps({{"ms": ms, "peak_mb": status_mb("VmHWM"), "base_mb": base,
                  "winners": int((out != 0).sum(1).max())}}))
"""
    return in_fresh_process(code)


def kernels() -> list[dict]:
    """Expand-and-sparsify and its parts, x (4096, 784) -> m = 8192, top 5% per row."""
    torch = torch_or_none()
    g = "kernels"
    rows: list[dict] = []
    key = jax.random.key(1)
    x = jax.random.normal(jax.random.key(0), (BATCH, D_IN))
    xn = np.array(x)
    xt = torch.from_numpy(xn) if torch is not None else None
    w = projection.gaussian(key, D_IN, M)
    wn = np.array(w)
    wt = torch.from_numpy(wn) if torch is not None else None

    def peers(name, jax_fn, np_fn, torch_fn, matmul_ms=None, note="") -> float:
        """A numpy row and a torch row, each timed alternately with jax_fn; the jax ms of the
        numpy pairing is returned. ceiling_fraction: matmul_ms over the kernel's ms."""
        jax_ms, np_ms = timed_pair(jax_fn, np_fn)
        fraction = None if matmul_ms is None else matmul_ms / jax_ms
        rows.append(row(g, name, jax_ms, "numpy", np_ms, fraction, note))
        if torch is None:
            rows.append(row(g, name, jax_ms, "torch", None, fraction, "not importable"))
        else:
            jax_ms_t, torch_ms = timed_pair(jax_fn, torch_fn)
            fraction_t = None if matmul_ms is None else matmul_ms / jax_ms_t
            rows.append(row(g, name, jax_ms_t, "torch", torch_ms, fraction_t, note))
        return jax_ms

    matmul = jax.jit(lambda a, b: a @ b)
    mm_ms = peers(
        "matmul alone (4096x784 @ 784x8192)", lambda: matmul(x, w), lambda: xn @ wn, lambda: xt @ wt
    )

    # kwta alone on the projected array
    y = matmul(x, w)
    yn = np.array(y)
    yt = torch.from_numpy(yn) if torch is not None else None
    kw = jax.jit(lambda a: sparsify.kwta(a, K))
    peers(
        f"kwta (4096, 8192), k={K}",
        lambda: kw(y),
        lambda: numpy_kwta(yn, K),
        lambda: torch_kwta(yt, K),
    )
    top_k = jax.jit(lambda a: jax.lax.top_k(a, K))
    kw_ms, top_k_ms = timed_pair(lambda: kw(y), lambda: top_k(y), 3)
    rows.append(row(g, f"kwta (4096, 8192), k={K}", kw_ms, "jax lax.top_k", top_k_ms))

    # expand-and-sparsify, gaussian: end to end (W drawn inside) and with W given
    es = jax.jit(lambda a: esparse.expand_and_sparsify(key, a, M, fraction=FRACTION))
    np_es = lambda: numpy_kwta(xn @ wn, K)  # noqa: E731
    torch_es = lambda: torch_kwta(xt @ wt, K)  # noqa: E731
    peers(
        "expand_and_sparsify gaussian (draws W)",
        lambda: es(x),
        np_es,
        torch_es,
        mm_ms,
        "peers get W precomputed",
    )
    fused = jax.jit(
        lambda a, b: jax.lax.map(
            lambda xb: selection.select(xb @ b, K, "values"),
            a.reshape(-1, FUSED_ROWS, D_IN),
        ).reshape(BATCH, M)
    )
    peers("expand_and_sparsify gaussian (W given)", lambda: fused(x, w), np_es, torch_es, mm_ms)
    gen = timed(lambda: projection.gaussian(key, D_IN, M))
    rows.append(row(g, "gaussian(key, 784, 8192) draw", gen, None, None, None, "threefry"))

    # sparse sign and srht: peers use the same dense matrix (what a user would write)
    for kind in ("sparse_sign", "srht"):
        f = jax.jit(
            lambda a, kind=kind: esparse.expand_and_sparsify(
                key, a, M, kind=kind, fraction=FRACTION
            )
        )
        if kind == "sparse_sign":
            s = np.array(projection.sparse_sign(key, D_IN, M))
        else:
            s = np.array(projection.project(key, jnp.eye(D_IN), M, "srht"))
        st = torch.from_numpy(s) if torch is not None else None
        peers(
            f"expand_and_sparsify {kind}",
            lambda f=f: f(x),
            lambda s=s: numpy_kwta(xn @ s, K),
            lambda st=st: torch_kwta(xt @ st, K),
            mm_ms,
            "peers: dense matrix",
        )

    # fly: gather-and-sum vs the dense Gaussian projection of the same shape
    idx = projection.fly(key, D_IN, M, FAN_IN)
    idxn = np.array(idx)
    # the gather-sum without apply_fly's index check
    fly_apply = jax.jit(projection.Projection.of(x, M, "fly", c=FAN_IN).apply)
    fly_ms, dense_ms = timed_pair(lambda: fly_apply(x, idx), lambda: matmul(x, w))
    rows.append(
        row(
            g,
            f"fly apply c={FAN_IN} vs dense gaussian",
            fly_ms,
            "jax matmul",
            dense_ms,
            None,
            f"speed-up {dense_ms / fly_ms:.1f}x",
        )
    )
    es_fly = jax.jit(lambda a: esparse.expand_and_sparsify(key, a, M, K, "fly", c=FAN_IN))
    idxt = torch.from_numpy(idxn.astype(np.int64)) if torch is not None else None
    peers(
        f"expand_and_sparsify fly c={FAN_IN}",
        lambda: es_fly(x),
        lambda: numpy_kwta(xn[:, idxn].sum(-1), K),
        lambda: torch_kwta(xt[:, idxt].sum(-1), K),
        mm_ms,
    )

    # very wide expansion: blocked, one block of the matrix in memory
    big_m, big_batch, block = 1_000_000, 16, 16384
    mem = _blocked_memory(big_m, big_batch, block)
    dense_mb = D_IN * big_m * 4 / 2**20
    rows.append(
        row(
            g,
            f"blocked e&s m=1e6, batch {big_batch}, block {block}",
            mem["ms"],
            None,
            None,
            None,
            f"peak RSS {mem['peak_mb']:.0f} MB (after imports {mem['base_mb']:.0f} MB); "
            f"dense W would be {dense_mb:.0f} MB; winners/row {mem['winners']}",
        )
    )
    return rows
