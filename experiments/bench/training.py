"""Benchmark groups `seeds` and `masked`: training many seeds at once against a Python loop
over seeds, and masked training and IMP against the same in torch."""

from __future__ import annotations

import functools

import jax
import numpy as np

import esparse
from experiments.bench.harness import first_call_ms, row, timed, timed_pair
from experiments.bench.peers import torch_imp, torch_masked_steps, torch_mlp, torch_or_none


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
    jax.block_until_ready(esparse.train_seeds(warm_keys, warm_params, ds, **kwargs))
    jax.block_until_ready(single(warm_keys[0], jax.tree.map(lambda p: p[0], warm_params), ds))
    rows = []
    for n_seeds in counts:
        keys = jax.random.split(jax.random.key(n_seeds), n_seeds)
        params = jax.vmap(model.init)(keys)
        per_seed = [(keys[i], jax.tree.map(lambda p, i=i: p[i], params)) for i in range(n_seeds)]
        looped = functools.partial(_loop_over_seeds, single, per_seed, ds)
        for chunk in (None, 8) if n_seeds >= 32 else (None,):
            vmapped = functools.partial(
                esparse.train_seeds, keys, params, ds, chunk_size=chunk, **kwargs
            )
            jax.clear_caches()
            vmap_first, loop_first = first_call_ms(vmapped), first_call_ms(looped)
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


MASK_SIZES, MASK_STEPS, MASK_BATCH, MASK_DENSITY = (40, 1024, 1024, 10), 300, 128, 0.2


def masked() -> list[dict]:
    """Masked MLP training on MNIST-1D (40-1024-1024-10, Adam, batch 128, 300 steps, 20% of
    each weight matrix kept): esparse (`train` with a mask, which uses `keep_pruned_zero`)
    vs the same unmasked, vs torch CPU masked; then IMP rounds (esparse's one `lax.scan`
    over rounds vs a torch loop)."""
    import optax

    from esparse import data, nn, train

    torch = torch_or_none()
    g = "masked"
    ds = data.mnist1d()
    model = nn.mlp(MASK_SIZES)
    key = jax.random.key(0)
    params = model.init(key)
    prunable = nn.kernel_mask_spec(params)
    mask = esparse.random_mask(jax.random.key(1), params, MASK_DENSITY, prunable=prunable)
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
            esparse.imp(
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
    tmodel = torch_mlp(MASK_SIZES)
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
        lambda: torch_masked_steps(tmodel, tmasks, xt, yt, order, MASK_STEPS, MASK_BATCH),
        3,
    )
    rows.append(row(g, name, masked_ms, "torch", torch_ms, None, "torch: mask after each step"))
    imp_ms, torch_imp_ms = timed_pair(
        lambda: imp(key, params),
        lambda: torch_imp(tmodel, xt, yt, order, rounds, imp_steps, MASK_BATCH),
        3,
    )
    note = f"{(rounds + 1) / imp_ms * 1e3:.2f} trainings/s esparse"
    rows.append(row(g, imp_name, imp_ms, "torch", torch_imp_ms, None, note))
    return rows
