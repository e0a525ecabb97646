"""Benchmarks of the esparse kernels against numpy and torch on the same machine.

python -m experiments.bench [group ...] [--out results/bench.json]

Groups are functions registered in GROUPS (name -> fn() returning a list of row dicts with
keys group, name, esparse_ms, peer, peer_ms, ratio, ceiling_fraction, note). ratio is
esparse_ms / peer_ms (below 1: esparse is faster). ceiling_fraction: for `ceiling`, this
library's GFLOP/s over the best of the three; for `kernels`, the jax matmul alone over the
kernel's time (1 means the kernel costs no more than its matmul). Times are medians of
repeated runs after a warm-up, with block_until_ready. The table is printed and merged into
the JSON file (written atomically).
"""

from __future__ import annotations

import os

os.environ.pop("OPENBLAS_CORETYPE", None)  # before numpy loads: let OpenBLAS pick its kernel

import argparse
import functools
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from esparse import projection, sparsify

try:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:  # torch is optional: its rows say so
    torch = None

BATCH, D_IN, M, FRACTION, FAN_IN = 4096, 784, 8192, 0.05, 6
K = int(round(FRACTION * M))


def timed(fn: Callable[[], object], reps: int = 5) -> float:
    """Median wall time in ms of fn() over `reps` runs after one warm-up run."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def row(group, name, esparse_ms, peer, peer_ms, ceiling_fraction=None, note="") -> dict:
    ratio = None if peer_ms is None else esparse_ms / peer_ms
    return {
        "group": group,
        "name": name,
        "esparse_ms": esparse_ms,
        "peer": peer,
        "peer_ms": peer_ms,
        "ratio": ratio,
        "ceiling_fraction": ceiling_fraction,
        "note": note,
    }


def _numpy_kwta(y: np.ndarray, k: int) -> np.ndarray:
    idx = np.argpartition(y, y.shape[1] - k, axis=1)[:, y.shape[1] - k :]
    out = np.zeros_like(y)
    np.put_along_axis(out, idx, np.take_along_axis(y, idx, axis=1), axis=1)
    return out


def _torch_kwta(y, k: int):
    values, idx = torch.topk(y, k, dim=1, sorted=False)
    return torch.zeros_like(y).scatter_(1, idx, values)


def ceiling() -> list[dict]:
    """float32 matmul 2048^3 GFLOP/s: the practical ceiling of this machine."""
    n = 2048
    flop = 2 * n**3
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    aj = jnp.asarray(a)
    mm = jax.jit(lambda u: u @ u)
    ms = {"jax": timed(lambda: mm(aj)), "numpy": timed(lambda: a @ a)}
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
from esparse import projection
def hwm_mb():  # peak resident set of this process (VmHWM resets at exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
x = jax.random.normal(jax.random.key(0), ({batch}, {D_IN}))
f = lambda: projection.expand_and_sparsify(
    jax.random.key(1), x, {m}, {FRACTION}, block_size={block_size})
base = hwm_mb()
jax.block_until_ready(f())
t = time.perf_counter(); out = jax.block_until_ready(f()); ms = 1e3 * (time.perf_counter() - t)
print(json.dumps({{"ms": ms, "peak_mb": hwm_mb(), "base_mb": base,
                  "winners": int((out != 0).sum(1).max())}}))
"""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1])] + sys.path)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernels() -> list[dict]:
    """Expand-and-sparsify and its parts, x (4096, 784) -> m = 8192, top 5% per row."""
    g = "kernels"
    rows: list[dict] = []
    key = jax.random.key(1)
    x = jax.random.normal(jax.random.key(0), (BATCH, D_IN))
    xn = np.array(x)
    xt = torch.from_numpy(xn) if torch is not None else None
    w = projection.gaussian(key, D_IN, M)
    wn = np.array(w)
    wt = torch.from_numpy(wn) if torch is not None else None

    def peers(name, jax_ms, np_fn, torch_fn, ceiling_fraction=None, note=""):
        rows.append(row(g, name, jax_ms, "numpy", timed(np_fn), ceiling_fraction, note))
        if torch is None:
            rows.append(row(g, name, jax_ms, "torch", None, ceiling_fraction, "not importable"))
        else:
            rows.append(row(g, name, jax_ms, "torch", timed(torch_fn), ceiling_fraction, note))

    matmul = jax.jit(lambda a, b: a @ b)
    mm_ms = timed(lambda: matmul(x, w))
    peers("matmul alone (4096x784 @ 784x8192)", mm_ms, lambda: xn @ wn, lambda: xt @ wt, 1.0)

    # kwta alone on the projected array
    y = matmul(x, w)
    yn = np.array(y)
    yt = torch.from_numpy(yn) if torch is not None else None
    kw = jax.jit(lambda a: sparsify.kwta(a, K))
    kw_ms = timed(lambda: kw(y))
    peers(
        f"kwta (4096, 8192), k={K}", kw_ms, lambda: _numpy_kwta(yn, K), lambda: _torch_kwta(yt, K)
    )
    top_k = jax.jit(lambda a: jax.lax.top_k(a, K))
    top_k_ms = timed(lambda: top_k(y), 3)
    rows.append(row(g, f"kwta (4096, 8192), k={K}", kw_ms, "jax lax.top_k", top_k_ms))

    # expand-and-sparsify, gaussian: end to end (W drawn inside) and with W given
    es = jax.jit(lambda a: projection.expand_and_sparsify(key, a, M, FRACTION))
    es_ms = timed(lambda: es(x))
    np_es = lambda: _numpy_kwta(xn @ wn, K)  # noqa: E731
    torch_es = lambda: _torch_kwta(xt @ wt, K)  # noqa: E731
    peers(
        "expand_and_sparsify gaussian (draws W)",
        es_ms,
        np_es,
        torch_es,
        mm_ms / es_ms,
        "peers get W precomputed",
    )
    fused = jax.jit(
        lambda a, b: jax.lax.map(
            lambda xb: projection._select_rows(xb @ b, jnp.int32(K), "values"),
            a.reshape(-1, projection._FUSED_ROWS, D_IN),
        ).reshape(BATCH, M)
    )
    fused_ms = timed(lambda: fused(x, w))
    peers("expand_and_sparsify gaussian (W given)", fused_ms, np_es, torch_es, mm_ms / fused_ms)
    gen = timed(lambda: projection.gaussian(key, D_IN, M))
    rows.append(row(g, "gaussian(key, 784, 8192) draw", gen, None, None, None, "threefry"))

    # sparse sign and srht: peers use the same dense matrix (what a user would write)
    for kind in ("sparse_sign", "srht"):
        f = jax.jit(lambda a, kind=kind: projection.expand_and_sparsify(key, a, M, FRACTION, kind))
        ms = timed(lambda f=f: f(x))
        if kind == "sparse_sign":
            s = np.array(projection.sparse_sign(key, D_IN, M))
        else:
            s = np.array(projection.project(key, jnp.eye(D_IN), M, "srht"))
        st = torch.from_numpy(s) if torch is not None else None
        peers(
            f"expand_and_sparsify {kind}",
            ms,
            lambda s=s: _numpy_kwta(xn @ s, K),
            lambda st=st: _torch_kwta(xt @ st, K),
            mm_ms / ms,
            "peers: dense matrix",
        )

    # fly: gather-and-sum vs the dense Gaussian projection of the same shape
    idx = projection.fly(key, D_IN, M, FAN_IN)
    idxn = np.array(idx)
    fly_apply = jax.jit(projection._fly_apply)
    fly_ms = timed(lambda: fly_apply(x, idx))
    rows.append(
        row(
            g,
            f"fly apply c={FAN_IN} vs dense gaussian",
            fly_ms,
            "jax matmul",
            mm_ms,
            None,
            f"speed-up {mm_ms / fly_ms:.1f}x",
        )
    )
    es_fly = jax.jit(lambda a: projection.expand_and_sparsify(key, a, M, FRACTION, "fly", c=FAN_IN))
    fly_es_ms = timed(lambda: es_fly(x))
    idxt = torch.from_numpy(idxn.astype(np.int64)) if torch is not None else None
    peers(
        f"expand_and_sparsify fly c={FAN_IN}",
        fly_es_ms,
        lambda: _numpy_kwta(xn[:, idxn].sum(-1), K),
        lambda: _torch_kwta(xt[:, idxt].sum(-1), K),
        mm_ms / fly_es_ms,
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


def seeds() -> list[dict]:
    """S seeds of an MNIST-1D MLP 40-256-256-10 (Adam, 200 steps of batch 128): one vmapped
    `train_seeds` call vs a Python loop over seeds of the jitted single-seed `train`."""
    import optax

    from esparse import data, nn, train

    ds = data.mnist1d()
    model = nn.mlp((40, 256, 256, 10))
    kwargs = dict(
        apply_fn=model.apply, optimizer=optax.adam(1e-3), steps=200, batch_size=128, log_every=200
    )
    single = jax.jit(lambda key, params, d: train.train(key, params, d, **kwargs))
    rows = []
    for n_seeds in (1, 8, 32, 128):
        keys = jax.random.split(jax.random.key(n_seeds), n_seeds)
        params = jax.vmap(model.init)(keys)
        per_seed = [(keys[i], jax.tree.map(lambda p, i=i: p[i], params)) for i in range(n_seeds)]
        vmapped = functools.partial(train.train_seeds, keys, params, ds, **kwargs)
        looped = functools.partial(_loop_over_seeds, single, per_seed, ds)
        jax.clear_caches()
        vmap_first, loop_first = _first_call_ms(vmapped), _first_call_ms(looped)
        vmap_ms, loop_ms = timed(vmapped, reps=2), timed(looped, reps=2)
        for what, ours, peer in (
            ("included", vmap_first, loop_first),
            ("excluded", vmap_ms, loop_ms),
        ):
            note = f"{n_seeds / ours * 1e3:.1f} seeds/s vmapped"
            name = f"train {n_seeds} seeds, compile {what}"
            rows.append(row("seeds", name, ours, "python loop", peer, None, note))
    return rows


def _loop_over_seeds(single, per_seed, ds):
    return [single(key, params, ds).final for key, params in per_seed]


def _first_call_ms(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return 1e3 * (time.perf_counter() - start)


GROUPS: dict[str, Callable[[], list[dict]]] = {
    "ceiling": ceiling,
    "kernels": kernels,
    "seeds": seeds,
}


def _environment() -> dict:
    env = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        env["numpy_blas"] = [
            {k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
    except ImportError:
        env["numpy_blas"] = "threadpoolctl not installed"
    return env


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict]) -> None:
    head = f"{'group':8} {'name':48} {'esparse ms':>10} {'peer':14} {'peer ms':>9} {'ratio':>6}"
    print(head + f" {'ceil':>5}  note")
    for r in rows:
        print(
            f"{r['group']:8} {r['name'][:48]:48} {_fmt(r['esparse_ms'], '10.1f')} "
            f"{(r['peer'] or '-')[:14]:14} {_fmt(r['peer_ms'], '9.1f')} "
            f"{_fmt(r['ratio'], '6.2f')} {_fmt(r['ceiling_fraction'], '5.2f')}  {r['note']}"
        )


def write_json(path: Path, results: dict) -> None:
    """Merge `results` (group -> entry) into the JSON file at path, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {"groups": {}}
    if path.exists():
        try:
            merged = json.loads(path.read_text())
        except json.JSONDecodeError:
            merged = {"groups": {}}
    merged.setdefault("groups", {}).update(results)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(merged, fh, indent=2)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    parser.add_argument("groups", nargs="*", help=f"groups to run (default: all of {list(GROUPS)})")
    parser.add_argument("--out", default="results/bench.json", help="JSON file to merge into")
    args = parser.parse_args(argv)
    unknown = [name for name in args.groups if name not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; known: {', '.join(GROUPS)}")
    env = _environment()
    print(json.dumps(env))
    results, all_rows = {}, []
    for name in args.groups or list(GROUPS):
        rows = GROUPS[name]()
        results[name] = {"rows": rows, "environment": env, "when": time.strftime("%Y-%m-%d %H:%M")}
        all_rows += rows
    print_table(all_rows)
    write_json(Path(args.out), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
