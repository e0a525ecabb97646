"""Validation at the public boundary: every check raises ValueError naming the argument.

These run on the host. Under `jax.jit` the array arguments are tracers whose values are
unknown, so value checks (finiteness) are skipped for tracers; shape checks always run.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np


def is_traced(x) -> bool:
    """True when `x` is an abstract value inside a jax transformation."""
    return isinstance(x, jax.core.Tracer)


def positive_int(name: str, value) -> int:
    """`value` as a Python int >= 1, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def int_in_range(name: str, value, low: int, high: int) -> int:
    """`value` as an int with low <= value <= high, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    return int(value)


def float_in_range(
    name: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    """`value` as a float in the interval between low and high (open ends as asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def resolve_count(name: str, k, width: int) -> int:
    """An int count in [1, width], or a float fraction in (0, 1] turned into one.

    A fraction f gives max(1, round(f * width)).
    """
    if isinstance(k, bool):
        raise ValueError(f"{name} must be an int or a float fraction, got {k!r}")
    if isinstance(k, numbers.Integral):
        return int_in_range(name, k, 1, width)
    if isinstance(k, numbers.Real):
        frac = float_in_range(name, k, 0.0, 1.0, low_open=True)
        return max(1, min(width, int(round(frac * width))))
    raise ValueError(f"{name} must be an int or a float fraction, got {k!r}")


def ndim(name: str, x, expected: int):
    """Raise unless `x` has `expected` dimensions; returns x."""
    if getattr(x, "ndim", None) != expected:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{name} must be {expected}-D, got shape {shape}")
    return x


def finite(name: str, x):
    """Raise if a concrete array holds NaN or inf (skipped for tracers); returns x."""
    if is_traced(x):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} holds {bad} NaN or inf values")
    return x


def same_length(name_a: str, a, name_b: str, b) -> None:
    """Raise unless a and b have the same leading dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of rows, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )


def one_of(name: str, value, options) -> None:
    """Raise unless value is one of options."""
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")


def same_tree(name: str, tree, ref_name: str, ref, *, shapes: bool = True) -> None:
    """Raise unless `tree` has the pytree structure of `ref` (and, if asked, its leaf shapes)."""
    tree_def, ref_def = jax.tree_util.tree_structure(tree), jax.tree_util.tree_structure(ref)
    if tree_def != ref_def:
        raise ValueError(f"{name} must have the tree structure of {ref_name}, got {tree_def}")
    if not shapes:
        return
    ref_leaves = jax.tree_util.tree_leaves(ref)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(tree), ref_leaves, strict=True):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)} must have shape {np.shape(b)} "
                f"like {ref_name}, got {np.shape(a)}"
            )
