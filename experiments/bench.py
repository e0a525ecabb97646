"""Benchmarks of the esparse kernels against numpy and torch on the same machine.

python -m experiments.bench [group ...] [--out results/bench.json]
python -m experiments.bench device [--small | --full] [--out PATH]   (experiments.bench_device)

Groups are functions registered in GROUPS (name -> fn() returning a list of row dicts with
keys group, name, esparse_ms, peer, peer_ms, ratio, ceiling_fraction, note). ratio is
esparse_ms / peer_ms (below 1: esparse is faster). ceiling_fraction: for `ceiling`, this
library's GFLOP/s over the best of the three; for `kernels`, the jax matmul alone over the
kernel's time (1 means the kernel costs no more than its matmul). Times are medians of
repeated runs after a warm-up, with block_until_ready; an esparse row and its peer are timed
alternately (`timed_pair`), so a drift in the machine's speed affects both. The table is
printed and merged into the JSON file (written atomically).
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

from esparse import projection, selection, sparsify
from experiments import bench_hashing

try:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:  # torch is optional: its rows say so
    torch = None

BATCH, D_IN, M, FRACTION, FAN_IN = 4096, 784, 8192, 0.05, 6
K = int(round(FRACTION * M))
FUSED_ROWS = 512  # rows per fused block, as projection's on CPU
_PAUSE_S = 0.25


def timed(fn: Callable[[], object], reps: int = 5) -> float:
    """Median wall time in ms of fn() over `reps` runs after one warm-up run."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def timed_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], reps: int = 7):
    """Median wall times in ms of fn_a() and fn_b(), run alternately after a warm-up of each,
    so that a change in the machine's speed during the run (a shared VM) hits both alike.
    A pause before each run lets the other library's worker threads, which spin for a while
    after each call (OpenBLAS, XLA's pool), go idle instead of stealing a core."""
    jax.block_until_ready(fn_a())
    jax.block_until_ready(fn_b())
    times: tuple[list, list] = ([], [])
    for _ in range(reps):
        for fn, out in ((fn_a, times[0]), (fn_b, times[1])):
            time.sleep(_PAUSE_S)
            start = time.perf_counter()
            jax.block_until_ready(fn())
            out.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[0])), 1e3 * float(np.median(times[1]))


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
        lambda: _numpy_kwta(yn, K),
        lambda: _torch_kwta(yt, K),
    )
    top_k = jax.jit(lambda a: jax.lax.top_k(a, K))
    kw_ms, top_k_ms = timed_pair(lambda: kw(y), lambda: top_k(y), 3)
    rows.append(row(g, f"kwta (4096, 8192), k={K}", kw_ms, "jax lax.top_k", top_k_ms))

    # expand-and-sparsify, gaussian: end to end (W drawn inside) and with W given
    es = jax.jit(lambda a: projection.expand_and_sparsify(key, a, M, FRACTION))
    np_es = lambda: _numpy_kwta(xn @ wn, K)  # noqa: E731
    torch_es = lambda: _torch_kwta(xt @ wt, K)  # noqa: E731
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
        f = jax.jit(lambda a, kind=kind: projection.expand_and_sparsify(key, a, M, FRACTION, kind))
        if kind == "sparse_sign":
            s = np.array(projection.sparse_sign(key, D_IN, M))
        else:
            s = np.array(projection.project(key, jnp.eye(D_IN), M, "srht"))
        st = torch.from_numpy(s) if torch is not None else None
        peers(
            f"expand_and_sparsify {kind}",
            lambda f=f: f(x),
            lambda s=s: _numpy_kwta(xn @ s, K),
            lambda st=st: _torch_kwta(xt @ st, K),
            mm_ms,
            "peers: dense matrix",
        )

    # fly: gather-and-sum vs the dense Gaussian projection of the same shape
    idx = projection.fly(key, D_IN, M, FAN_IN)
    idxn = np.array(idx)
    fly_apply = jax.jit(projection._fly_apply)
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
    es_fly = jax.jit(lambda a: projection.expand_and_sparsify(key, a, M, FRACTION, "fly", c=FAN_IN))
    idxt = torch.from_numpy(idxn.astype(np.int64)) if torch is not None else None
    peers(
        f"expand_and_sparsify fly c={FAN_IN}",
        lambda: es_fly(x),
        lambda: _numpy_kwta(xn[:, idxn].sum(-1), K),
        lambda: _torch_kwta(xt[:, idxt].sum(-1), K),
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


def seeds(counts: tuple[int, ...] = (1, 8, 32, 128), steps: int = 200) -> list[dict]:
    """S seeds of an MNIST-1D MLP 40-256-256-10 (Adam, `steps` steps of batch 128) for each S
    of `counts`: one vmapped `train_seeds` call vs a Python loop over seeds of the jitted
    single-seed `train`; for S >= 32 also in chunks of 8 seeds (`chunk_size=8`), which keeps
    a chunk's weights and optimizer state in a CPU's caches."""
    import optax

    from esparse import data, nn, train

    ds = data.mnist1d()
    model = nn.mlp((40, 256, 256, 10))
    kwargs = dict(
        apply_fn=model.apply,
        optimizer=optax.adam(1e-3),
        steps=steps,
        batch_size=128,
        log_every=steps,
    )
    single = jax.jit(lambda key, params, d: train.train(key, params, d, **kwargs))
    # one throwaway call of each first: the process's first trace pays one-off costs that
    # would otherwise be charged to whichever is timed first
    warm_keys = jax.random.split(jax.random.key(0), 1)
    warm_params = jax.vmap(model.init)(warm_keys)
    jax.block_until_ready(train.train_seeds(warm_keys, warm_params, ds, **kwargs))
    jax.block_until_ready(single(warm_keys[0], jax.tree.map(lambda p: p[0], warm_params), ds))
    rows = []
    for n_seeds in counts:
        keys = jax.random.split(jax.random.key(n_seeds), n_seeds)
        params = jax.vmap(model.init)(keys)
        per_seed = [(keys[i], jax.tree.map(lambda p, i=i: p[i], params)) for i in range(n_seeds)]
        looped = functools.partial(_loop_over_seeds, single, per_seed, ds)
        for chunk in (None, 8) if n_seeds >= 32 else (None,):
            vmapped = functools.partial(
                train.train_seeds, keys, params, ds, chunk_size=chunk, **kwargs
            )
            jax.clear_caches()
            vmap_first, loop_first = _first_call_ms(vmapped), _first_call_ms(looped)
            vmap_ms, loop_ms = timed_pair(vmapped, looped, reps=2)
            for what, ours, peer in (
                ("included", vmap_first, loop_first),
                ("excluded", vmap_ms, loop_ms),
            ):
                note = f"{n_seeds / ours * 1e3:.1f} seeds/s vmapped"
                name = f"train {n_seeds} seeds{f' chunks of {chunk}' if chunk else ''}, "
                rows.append(
                    row("seeds", name + f"compile {what}", ours, "python loop", peer, None, note)
                )
    return rows


def _loop_over_seeds(single, per_seed, ds):
    return [single(key, params, ds).final for key, params in per_seed]


def _first_call_ms(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return 1e3 * (time.perf_counter() - start)


# --------------------------------------------------------------------------- masked training

MASK_SIZES, MASK_STEPS, MASK_BATCH, MASK_DENSITY = (40, 1024, 1024, 10), 300, 128, 0.2


def _torch_mlp(sizes: tuple[int, ...]):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_masked_steps(model, masks, x, y, order, steps: int, batch: int) -> None:
    """`steps` Adam steps of the masked torch MLP (weights and their updates masked, the
    usual hand-written torch recipe), minibatches in the order of `order`."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for w, m in zip(weights, masks, strict=True):
            w.mul_(m)
    for step in range(steps):
        idx = order[step * batch : (step + 1) * batch]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        with torch.no_grad():
            for w, m in zip(weights, masks, strict=True):
                w.mul_(m)


def _torch_imp(model, x, y, order, rounds: int, steps: int, batch: int) -> list:
    """IMP with rewinding in torch: train, prune 20% of each layer's remaining weights by
    magnitude (kthvalue), rewind to the initial weights; `rounds` + 1 trainings."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    theta0 = [lin.weight.detach().clone() for lin in linears]
    masks = [torch.ones_like(w) for w in theta0]
    for _ in range(rounds + 1):
        with torch.no_grad():
            for lin, w0 in zip(linears, theta0, strict=True):
                lin.weight.copy_(w0)
        _torch_masked_steps(model, masks, x, y, order, steps, batch)
        with torch.no_grad():
            for i, lin in enumerate(linears):
                alive = lin.weight.abs()[masks[i].bool()]
                n_prune = int(round(0.2 * alive.numel()))
                cut = torch.kthvalue(alive, n_prune).values
                masks[i] = masks[i] * (lin.weight.abs() > cut)
    return masks


def masked() -> list[dict]:
    """Masked MLP training on MNIST-1D (40-1024-1024-10, Adam, batch 128, 300 steps, 20% of
    each weight matrix kept): esparse (`train` with a mask, which uses `keep_pruned_zero`)
    vs the same unmasked, vs torch CPU masked; then IMP rounds (esparse's one `lax.scan`
    over rounds vs a torch loop)."""
    import optax

    from esparse import data, masks, nn, train

    g = "masked"
    ds = data.mnist1d()
    model = nn.mlp(MASK_SIZES)
    key = jax.random.key(0)
    params = model.init(key)
    prunable = nn.kernel_mask_spec(params)
    mask = masks.random_mask(jax.random.key(1), params, MASK_DENSITY, prunable=prunable)
    kwargs = dict(
        apply_fn=model.apply,
        optimizer=optax.adam(1e-3),
        steps=MASK_STEPS,
        batch_size=MASK_BATCH,
        log_every=MASK_STEPS,
    )
    run = jax.jit(lambda k, p, d, m: train.train(k, p, d, mask=m, **kwargs).params)
    run_dense = jax.jit(lambda k, p, d: train.train(k, p, d, **kwargs).params)
    masked_ms, dense_ms = timed_pair(
        lambda: run(key, params, ds, mask), lambda: run_dense(key, params, ds), 3
    )
    name = f"{MASK_STEPS} Adam steps MLP 40-1024-1024-10, 20% kept"
    rows = [row(g, name, masked_ms, "esparse dense", dense_ms, None, "masking overhead")]

    rounds = 3
    imp_steps = 100
    imp_kwargs = dict(kwargs, steps=imp_steps, log_every=imp_steps)

    def train_fn(k, p, m):
        result = train.train(k, p, ds, mask=m, **imp_kwargs)
        return result.params, result.final

    imp = jax.jit(
        lambda k, p: (
            masks.imp(
                k, p, train_fn, rounds=rounds, prune_fraction=0.2, prunable=prunable
            ).densities
        )
    )
    imp_name = f"IMP {rounds} rounds (+1 train) of {imp_steps} steps"
    if torch is None:
        rows.append(row(g, name, masked_ms, "torch", None, None, "not importable"))
        imp_ms = timed(lambda: imp(key, params), 3)
        rows.append(row(g, imp_name, imp_ms, "torch", None, None, "not importable"))
        return rows
    torch.manual_seed(0)
    tmodel = _torch_mlp(MASK_SIZES)
    xt = torch.from_numpy(np.array(ds.x_train))
    yt = torch.from_numpy(np.asarray(ds.y_train).astype(np.int64))
    order = torch.cat(
        [torch.randperm(len(xt)) for _ in range(MASK_STEPS * MASK_BATCH // len(xt) + 1)]
    )
    tmasks = [
        torch.from_numpy(np.asarray(m, dtype=np.float32).T)
        for m in jax.tree_util.tree_leaves(mask)
        if m.ndim == 2
    ]
    masked_ms, torch_ms = timed_pair(
        lambda: run(key, params, ds, mask),
        lambda: _torch_masked_steps(tmodel, tmasks, xt, yt, order, MASK_STEPS, MASK_BATCH),
        3,
    )
    rows.append(row(g, name, masked_ms, "torch", torch_ms, None, "torch: mask after each step"))
    imp_ms, torch_imp_ms = timed_pair(
        lambda: imp(key, params),
        lambda: _torch_imp(tmodel, xt, yt, order, rounds, imp_steps, MASK_BATCH),
        3,
    )
    note = f"{(rounds + 1) / imp_ms * 1e3:.2f} trainings/s esparse"
    rows.append(row(g, imp_name, imp_ms, "torch", torch_imp_ms, None, note))
    return rows


# --------------------------------------------------------------------------- analysis


def _solve_vs_sklearn(ours, peer, phi, y) -> tuple[float, float, float]:
    """ms of ours(phi, y), ms of peer.fit on the same arrays, max |weight difference|."""
    phin, yn = np.asarray(phi), np.asarray(y)
    ms, peer_ms = timed_pair(lambda: ours(phi, y), lambda: peer.fit(phin, yn), 3)
    return ms, peer_ms, float(np.max(np.abs(np.asarray(ours(phi, y)) - peer.coef_.T)))


def analysis() -> list[dict]:
    """Random-feature solves and mutual information vs scikit-learn on the same inputs:
    ridge (n=4000, N=2048 random ReLU features, 10 one-hot targets) vs sklearn Ridge;
    min-norm least squares (n=1000, N=2000) vs sklearn LinearRegression (scipy lstsq); KSG
    mutual information (n=4000, k=3, 1-D) vs sklearn mutual_info_regression."""
    from sklearn.feature_selection import mutual_info_regression
    from sklearn.linear_model import LinearRegression, Ridge

    from esparse import features, info

    g = "analysis"
    rows = []
    rng = np.random.default_rng(0)
    for n, n_feat, what in ((4000, 2048, "ridge"), (1000, 2000, "min-norm")):
        x = jnp.asarray(rng.standard_normal((n, 40), dtype=np.float32))
        phi = features.random_relu_features(jax.random.key(0), x, n_feat)
        y = jax.nn.one_hot(jnp.asarray(rng.integers(0, 10, n)), 10)
        if what == "ridge":
            ours = jax.jit(lambda a, b: features.ridge(a, b, 100.0))
            peer, peer_name = Ridge(alpha=100.0, fit_intercept=False), "sklearn Ridge"
        else:
            ours = jax.jit(features.min_norm_lstsq)
            peer, peer_name = LinearRegression(fit_intercept=False), "sklearn LinReg"
        ms, peer_ms, diff = _solve_vs_sklearn(ours, peer, phi, y)
        name = f"{what} n={n} N={n_feat} (10 targets, f32)"
        rows.append(row(g, name, ms, peer_name, peer_ms, None, f"max |dw| {diff:.1e}"))
    n = 4000
    x = rng.standard_normal(n)
    y = np.tanh(x) + 0.5 * rng.standard_normal(n)
    xs, ys = (jnp.asarray((v / v.std()).astype(np.float32)) for v in (x, y))
    mi = jax.jit(lambda a, b: info.mutual_information(a, b, k=3))

    def peer_mi():
        return mutual_info_regression(x[:, None], y, n_neighbors=3, random_state=0)[0]

    note = f"MI {float(mi(xs, ys)):.4f} vs {peer_mi():.4f} nats"
    ms, peer_ms = timed_pair(lambda: mi(xs, ys), peer_mi, 5)
    rows.append(row(g, f"KSG MI n={n}, k=3, 1-D", ms, "sklearn MI", peer_ms, None, note))
    return rows


GROUPS: dict[str, Callable[[], list[dict]]] = {
    "ceiling": ceiling,
    "kernels": kernels,
    "masked": masked,
    "seeds": seeds,
    "analysis": analysis,
    "outputs": bench_hashing.outputs,  # sparse outputs vs the dense floor
    "hamming": bench_hashing.hamming,  # Hamming k-NN vs FAISS and numpy
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["device"]:  # the one-shot device check has its own options and JSON
        from experiments import bench_device

        return bench_device.main(argv[1:])
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
