"""Dispatch does not wait for the device: public functions called on the pending output of a
long producer (a chain of 2048^2 matmuls) return long before the producer ends.

Each consumer is first called once on a ready input (compilation excluded). Then, for each
group, the producer is started, every consumer of the group is dispatched on slices of its
pending output, and the test asserts (1) each dispatch took well under the producer's own time,
measured in the same test, and (2) the producer's output is still not ready after all of
them: a consumer that synchronised would have waited for it. `jax.transfer_guard` cannot be
the test: it does not fire on the CPU backend.
"""

import time

import jax
import jax.numpy as jnp
import optax
import pytest

from esparse import data, engine, expansion, nn, projection, regression, sparsify

N = 2048
RATIO = 0.3  # a dispatch must take under this fraction of the producer's time


@jax.jit
def _chain(a, steps):
    return jax.lax.fori_loop(0, steps, lambda i, b: jnp.tanh(b @ a), a)


@pytest.fixture(scope="module")
def producer():
    """(start() -> pending (N, N) array, producer seconds), sized to take about 1.5 s."""
    a = jax.random.normal(jax.random.key(0), (N, N)) / N**0.5
    jax.block_until_ready(_chain(a, 1))
    start = time.perf_counter()
    jax.block_until_ready(_chain(a, 2))
    per_step = (time.perf_counter() - start) / 2
    steps = int(min(200, max(4, round(1.5 / per_step))))
    start = time.perf_counter()
    jax.block_until_ready(_chain(a, steps))
    seconds = time.perf_counter() - start
    return (lambda: _chain(a, steps)), seconds


def _consumers():
    """name -> fn(big) dispatching one public function on slices of a (N, N) array."""
    key = jax.random.key(1)
    indices = projection.fly(key, 64, 512, 6)
    model = nn.mlp((40, 32, 10))
    keys = jax.random.split(key, 4)
    params = jax.vmap(model.init)(keys)
    kw = dict(apply_fn=model.apply, optimizer=optax.sgd(0.1), steps=20, batch_size=32)

    def train_seeds(big):
        ds = data.Dataset(
            big[:256, :40],
            jnp.argmax(big[:256, 40:50], 1),
            big[256:320, :40],
            jnp.argmax(big[256:320, 40:50], 1),
        )
        return engine.train_seeds(keys, params, ds, log_every=20, **kw)

    out = {
        "kwta": lambda big: sparsify.kwta(big[:64], 100),
        "kwta_mask": lambda big: sparsify.kwta_mask(big[:64], 100),
        "kwta_binary": lambda big: sparsify.kwta_binary(big[:64], 100),
        "project": lambda big: projection.project(key, big[:64, :64], 512),
        "apply_fly": lambda big: projection.apply_fly(big[:64, :64], indices),
        "train_seeds": train_seeds,
        "ridge": lambda big: regression.ridge(big[:256, :128], big[:256, 200], 1.0),
        "min_norm_lstsq": lambda big: regression.min_norm_lstsq(big[:128, :256], big[:128, 300]),
    }
    for kind, args in (("gaussian", {}), ("sparse_sign", {}), ("fly", {"c": 6}), ("srht", {})):
        out[f"expand_and_sparsify {kind}"] = lambda big, kind=kind, args=args: (
            expansion.expand_and_sparsify(key, big[:64, :64], 512, kind=kind, fraction=0.05, **args)
        )
    return out


def test_public_kernels_do_not_wait_for_a_pending_input(producer):
    start_producer, producer_s = producer
    consumers = _consumers()
    ready = jnp.zeros((N, N))
    for fn in consumers.values():  # compile each once, outside the timed dispatches
        jax.block_until_ready(fn(ready))
    dispatch = {}
    for group in (list(consumers)[:6], list(consumers)[6:]):
        pending = start_producer()
        outputs = []
        for name in group:
            start = time.perf_counter()
            outputs.append(consumers[name](pending))
            dispatch[name] = time.perf_counter() - start
        still_pending = not pending.is_ready()
        jax.block_until_ready((pending, outputs))
        assert still_pending, f"the producer finished while {group} were dispatched"
    slow = {
        name: round(s / producer_s, 3) for name, s in dispatch.items() if s > RATIO * producer_s
    }
    assert not slow, f"dispatch / producer time above {RATIO} ({producer_s:.2f} s): {slow}"
