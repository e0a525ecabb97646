"""Validation at the public boundary: every check raises ValueError naming the argument.

Policy for bad values (issue 14: no public function blocks on the device by default):
- Shapes, dtypes and static arguments (sizes, k, method names, Python-number
  hyperparameters) are checked here, on the host, always: they need no array values.
- Array values are never read back from the device on a default path: no `np.asarray`,
  `float()`, `bool()` or `.item()` of an array argument. Kernels take
  `check_finite: bool = False`; with True, `finite` copies the array to the host and raises
  the ValueError naming the argument (this opt-in syncs).
- By default bad values are propagated on the device, never turned into a plausible result:
  a row holding a NaN or an inf comes out of a selection (kwta, expand_and_sparsify) all NaN
  (values and binary codes) or all False (masks: zero winners where k were asked for);
  solves, distances and estimators propagate NaN through their arithmetic; a fly unit with
  an index out of range outputs NaN; a lambda grid that is not positive and increasing (as a
  device array) gives NaN losses and weights. Scalars and grids given as Python numbers or
  numpy arrays are already on the host and are checked here at no cost (`host_value`).
- Data enters from the host through the loaders of `esparse.data`, which check values once,
  there, before the arrays move to the device.
Under `jax.jit` the array arguments are tracers; value checks are skipped for them.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
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


def host_value(x) -> np.ndarray | None:
    """x as a numpy array when it is already on the host (Python number, list or tuple,
    numpy array or scalar), else None (a jax array or tracer: its value is not read)."""
    if isinstance(x, np.ndarray | np.generic | numbers.Number | list | tuple):
        return np.asarray(x)
    return None


def finite(name: str, x):
    """Raise if a concrete array holds NaN or inf (skipped for tracers); returns x.

    Copies a device array to the host (a sync): only for `check_finite=True` and host data."""
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


def leaves_like(name: str, tree, ref_name: str, ref) -> list:
    """Leaves of `tree`, checked to have the structure and leaf shapes of `ref`."""
    same_tree(name, tree, ref_name, ref)
    return jax.tree_util.tree_leaves(tree)


def bool_flags(name: str, tree, ref_name: str, ref) -> list[bool]:
    """A pytree of Python bools with the structure of `ref`, as a list (tree-flatten order)."""
    same_tree(name, tree, ref_name, ref, shapes=False)
    flags = jax.tree_util.tree_leaves(tree)
    for flag in flags:
        if not isinstance(flag, bool | np.bool_):
            raise ValueError(f"{name} must hold Python bools, got a leaf {flag!r}")
    return [bool(f) for f in flags]


def fraction(name: str, value, *, density: bool = False) -> None:
    """A scalar sparsity in [0, 1), or with density=True a density in (0, 1].

    Values already on the host are checked; a jax array's value is not read (no sync), only
    its shape."""
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    host = host_value(value)
    if host is None:
        return
    float_in_range(name, host.item(), 0.0, 1.0, low_open=density, high_open=not density)


def fraction_per_leaf(name: str, value, ref, flags: list[bool], *, density: bool = False) -> list:
    """One fraction per leaf of `ref` from a scalar or a pytree of scalars shaped like ref;
    those of the flagged leaves are checked with `fraction`."""
    if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(value)):
        values = [value] * len(flags)
    else:
        same_tree(name, value, "params", ref, shapes=False)
        values = jax.tree_util.tree_leaves(value)
    for v, flag in zip(values, flags, strict=True):
        if flag:
            fraction(name, v, density=density)
    return values


def count_in_range(name: str, k, low: int, high: int) -> None:
    """A count k in [low, high] that may be traced: a Python int or a host scalar is checked,
    a jax array's value is not read (it stays on the device), only its shape."""
    host = host_value(k)
    if host is None:
        if np.ndim(k) != 0:
            raise ValueError(f"{name} must be a scalar, got shape {np.shape(k)}")
        return
    if host.ndim != 0 or host.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an int, got {k!r}")
    int_in_range(name, int(host), low, high)


def pruning_scope(scope: str, fraction_name: str, fraction) -> None:
    """scope is "layer" or "global"; with "global", the fraction is one scalar."""
    one_of("scope", scope, ("layer", "global"))
    if scope == "global" and not jax.tree_util.treedef_is_leaf(
        jax.tree_util.tree_structure(fraction)
    ):
        raise ValueError(f"{fraction_name} must be one scalar with scope='global', got a pytree")


def labels(name: str, y, n_classes: int) -> None:
    """Int class labels in [0, n_classes). Checked when `y` is on the host (a numpy array,
    list or number); a jax array's values are not read (no sync): callers poison their
    results on the device instead (`labels_ok`)."""
    host = host_value(y)
    if host is None:
        return
    if host.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer labels, got dtype {host.dtype}")
    bad = (host < 0) | (host >= n_classes)
    if np.any(bad):
        raise ValueError(
            f"{name} must hold labels in [0, {n_classes}), got {host[bad].ravel()[0].item()!r} "
            f"({int(np.count_nonzero(bad))} outside)"
        )


def labels_ok(y, n_classes: int):
    """On the device, no sync: () bool, True when every label of `y` lies in [0, n_classes)."""
    y = jnp.asarray(y)
    return jnp.all((y >= 0) & (y < n_classes))
