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
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    """True when `x` is an abstract value inside a jax transformation."""
    return isinstance(x, jax.core.Tracer)


def static(name: str, value, what: str = "a size") -> None:
    """Raise unless `value` is a static Python value: a traced or jax array value cannot set
    an array shape or a count, so it must be static under jax.jit / jax.vmap."""
    if isinstance(value, jax.core.Tracer | jax.Array):
        raise ValueError(
            f"{name} is {what} and must be static (a Python number), got "
            f"{'a traced' if isinstance(value, jax.core.Tracer) else 'a jax array'} "
            f"{type(value).__name__} of shape {np.shape(value)}: keep it out of the jitted or "
            f"vmapped arguments (static: use static_argnums / functools.partial, e.g. "
            f"jax.jit(f, static_argnames={name!r}) or functools.partial(f, {name}=...))"
        )


def positive_int(name: str, value) -> int:
    """`value` as a Python int >= 1, else ValueError."""
    static(name, value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def int_in_range(name: str, value, low: int, high: int) -> int:
    """`value` as an int with low <= value <= high, else ValueError."""
    static(name, value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
    return int(value)


def float_in_range(
    name: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    """`value` as a float in the interval between low and high (open ends as asked)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def count_or_fraction(
    k,
    fraction,
    width: int,
    *,
    k_name: str = "k",
    fraction_name: str = "fraction",
    stacklevel: int = 3,
) -> int:
    """The count of `width` entries asked for by exactly one of `k` (an int count in
    [1, width]) and `fraction` (a share in (0, 1] of width, giving max(1, round(f * width))).

    Both are static: a traced value is a ValueError saying so. Deprecated: a float k in
    (0, 1] is read as a fraction with a DeprecationWarning (`stacklevel` points it at the
    caller); any other float k is a ValueError asking for an int."""
    if (k is None) == (fraction is None):
        got = "neither" if k is None else f"both {k_name}={k!r} and {fraction_name}={fraction!r}"
        raise ValueError(
            f"give exactly one of {k_name}= (an int count in [1, {width}]) and "
            f"{fraction_name}= (a share in (0, 1] of {width}), got {got}"
        )
    if fraction is not None:
        static(fraction_name, fraction, "a share of a size")
        frac = float_in_range(fraction_name, fraction, 0.0, 1.0, low_open=True)
        return max(1, min(width, int(round(frac * width))))
    static(k_name, k, "a count")
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        return int_in_range(k_name, k, 1, width)
    if isinstance(k, numbers.Real) and not isinstance(k, bool) and 0.0 < float(k) <= 1.0:
        warnings.warn(
            f"[esparse] {k_name}={k!r}: a float {k_name} as a share is deprecated and will be "
            f"an error; pass {fraction_name}={k!r} for a share of {width}, or an int "
            f"{k_name} for a count",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return count_or_fraction(None, k, width, k_name=k_name, fraction_name=fraction_name)
    hint = ""
    if isinstance(k, numbers.Real) and not isinstance(k, bool) and np.isfinite(float(k)):
        example = int(round(float(k)))
        hint = f" (pass an int, e.g. {k_name}={example}, or a share with {fraction_name}=)"
    raise ValueError(f"{k_name} must be an int count in [1, {width}], got {k!r}{hint}")


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
    tree_def: Any = jax.tree_util.tree_structure(tree)
    ref_def = jax.tree_util.tree_structure(ref)
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


def prunable_flags(prunable, params) -> list[bool]:
    """Which leaves of `params` are prunable, as a list in tree-flatten order.

    The one default of every pruning and mask-counting function: None marks every leaf with
    ndim >= 2 (weight matrices and conv kernels; not biases, scales or scalars). True marks
    every leaf, False none; or a pytree of Python bools shaped like params (e.g.
    `esparse.nn.kernel_mask_spec(params)`, which also leaves out fixed projections)."""
    if prunable is None:
        return [np.ndim(leaf) >= 2 for leaf in jax.tree_util.tree_leaves(params)]
    if isinstance(prunable, bool | np.bool_):
        return [bool(prunable)] * len(jax.tree_util.tree_leaves(params))
    return bool_flags("prunable", prunable, "params", params)


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
