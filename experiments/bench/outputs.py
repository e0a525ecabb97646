"""Benchmark group `outputs`: expand-and-sparsify to the indices form, x (4096, 784) ->
m = 8192, top 5%, against drawing W plus the jax matmul alone (the floor of the dense
computation); fly with packed output (c = 6) against the dense Gaussian projection of the
same shape. The shapes are those of `kernels`."""

from __future__ import annotations

import jax

import esparse
from esparse import projection
from experiments.bench.harness import row, timed_pair
from experiments.bench.kernels import BATCH, D_IN, FAN_IN, FRACTION, M


def outputs() -> list[dict]:
    """Sparse outputs against the dense floor (bench's kernel shapes)."""
    g, rows = "outputs", []
    key = jax.random.key(1)
    x = jax.random.normal(jax.random.key(0), (BATCH, D_IN))
    floor = jax.jit(lambda a: a @ projection.gaussian(key, D_IN, M))  # draw W + matmul
    es_idx = jax.jit(
        lambda a: esparse.expand_and_sparsify(key, a, M, fraction=FRACTION, output="indices")
    )
    es_dense = jax.jit(lambda a: esparse.expand_and_sparsify(key, a, M, fraction=FRACTION))
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
        lambda a: esparse.expand_and_sparsify(
            key, a, M, kind="fly", output="packed", c=FAN_IN, fraction=FRACTION
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
