"""Memory and cost of compiled seed programs, known before they run.

`jax.jit(f).lower(*args).compile()` reports its memory (`memory_analysis()`) and FLOPs
(`cost_analysis()`) on every backend, so the seed engine can choose how many seeds fit in one
call from a memory budget, and a whole suite can be planned (compiled, not run) on a laptop for
a GPU. Memory figures are per device (an SPMD program's shard). XLA counts a loop body's
FLOPs once, so `footprint` also counts the matrix products of the traced program with every
`lax.scan` (and static `fori_loop`) body counted `length` times, and reports the larger.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.extend import core as jax_core

__all__ = ["Footprint", "chunk_for_memory", "default_memory_bytes", "footprint", "matmul_flops"]


@dataclasses.dataclass(frozen=True)
class Footprint:
    """peak_bytes: arguments + outputs + temporaries of one call, per device; flops: of one
    call, the larger of XLA's count and `matmul_flops`."""

    peak_bytes: int
    flops: float


def footprint(jitted: Any, *args: Any) -> Footprint:
    """Compile `jitted` (a `jax.jit` function) for `args` (arrays or ShapeDtypeStructs) and
    read its memory and cost analyses; nothing runs."""
    compiled = jitted.lower(*args).compile()
    mem = compiled.memory_analysis()
    peak = (
        mem.argument_size_in_bytes
        + mem.output_size_in_bytes
        + mem.temp_size_in_bytes
        - mem.alias_size_in_bytes
    )
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):  # older jax: one dict per program
        cost = cost[0] if cost else {}
    xla_flops = float((cost or {}).get("flops", 0.0))
    return Footprint(int(peak), max(xla_flops, matmul_flops(jax.make_jaxpr(jitted)(*args))))


def nested_jaxprs(value: Any) -> list:
    """The programs held by one equation parameter (a jit's, scan's or cond's jaxprs), as
    open jaxprs; [] for any other parameter."""
    if isinstance(value, jax_core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jax_core.Jaxpr):
        return [value]
    if isinstance(value, tuple | list):
        return [j for v in value for j in nested_jaxprs(v)]
    return []


def matmul_flops(jaxpr: jax_core.ClosedJaxpr | jax_core.Jaxpr) -> float:
    """FLOPs of the matrix products (`dot_general`, 2 per multiply-add) in a traced program
    (`jax.make_jaxpr(f)(*args)`), with a `lax.scan` body counted `length` times, the costlier
    branch of a `lax.cond`, and a `while_loop` body once (its trip count is not static)."""
    if isinstance(jaxpr, jax_core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape  # type: ignore[union-attr]
            k = float(np.prod([lhs[d] for d in contract]))
            total += 2.0 * float(np.prod(eqn.outvars[0].aval.shape)) * k  # type: ignore[union-attr]
            continue
        inner = [matmul_flops(j) for v in eqn.params.values() for j in nested_jaxprs(v)]
        if not inner:
            continue
        if eqn.primitive.name == "cond":
            total += max(inner)
        elif eqn.primitive.name == "scan":
            total += eqn.params["length"] * sum(inner)
        else:
            total += sum(inner)
    return total


def default_memory_bytes() -> int:
    """The memory of one device: what an accelerator reports as its limit, or on CPU half of
    the machine's RAM (the rest for the host's copies of data and results)."""
    stats = getattr(jax.devices()[0], "memory_stats", lambda: None)()
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)


def chunk_for_memory(
    measure: Callable[[int], Footprint], n_seeds: int, budget_bytes: int, multiple: int = 1
) -> int:
    """The most seeds per call (a multiple of `multiple`, at most n_seeds rounded up to it)
    whose compiled footprint fits `budget_bytes`.

    measure(c) compiles the program for c seeds. All the seeds in one call are tried first (on
    a large accelerator that is one compilation per call). Otherwise memory grows about
    linearly in c (the seed axis is a batch axis), so two compilations, at `multiple` and
    `2 * multiple` seeds, give the base and per-seed bytes; XLA's buffer assignment is not
    exactly linear, so the estimate is then compiled and shrunk in proportion until it fits.
    ValueError when not even `multiple` seeds fit.
    """
    most = -(-n_seeds // multiple) * multiple
    if most > multiple and measure(most).peak_bytes <= budget_bytes:
        return most
    one = measure(multiple)
    if one.peak_bytes > budget_bytes:
        raise ValueError(
            f"memory budget {budget_bytes / 1e9:.3g} GB is too small for {multiple} seed(s) per "
            f"call: the program needs {one.peak_bytes / 1e9:.3g} GB"
        )
    if most == multiple:
        return multiple
    two = measure(2 * multiple)
    per_seed = max(two.peak_bytes - one.peak_bytes, 1) / multiple
    base = one.peak_bytes - per_seed * multiple
    fits = int((budget_bytes - base) // per_seed) // multiple * multiple
    size = max(multiple, min(most - multiple, fits))  # `most` was measured and did not fit
    while size > multiple:
        peak = measure(size).peak_bytes
        if peak <= budget_bytes:
            break
        shrunk = int(size * budget_bytes / peak) // multiple * multiple
        size = max(multiple, min(size - multiple, shrunk))
    return size
