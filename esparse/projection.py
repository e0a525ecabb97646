"""Random projections from a PRNG key, and expand-and-sparsify.

Every random matrix is defined block by block: output units come in canonical blocks (256
units; for SRHT one Hadamard transform of the padded input size), and block b is drawn from
`jax.random.fold_in(key, b)`. The materialized matrix of m units is the concatenation of the
first ceil(m / block) blocks, cut to m. Blocked application (`project(..., block_size=...)`)
regenerates the same blocks one step at a time, so it equals the materialized projection for
the same key while holding one block of the matrix in memory, whatever m is.

Kinds (each scaled so that E ||x P||^2 = ||x||^2):
- `gaussian`: dense N(0, 1/m) entries (Johnson-Lindenstrauss).
- `sparse_sign`: entries +-1/sqrt(m s) with probability s/2 each, else 0 (Achlioptas 2003,
  s = 1/3; Li, Hastie & Church 2006 "very sparse", default s = 1/sqrt(d_in)).
- `fly`: each output unit sums c distinct random inputs, stored as an (m, c) index array and
  applied by gather-and-sum (Dasgupta, Stevens & Navlakha, Science 2017). It is a binary
  projection, not norm-preserving; it is not rescaled.
- `srht`: subsampled randomized Hadamard transform, x -> (x D H)[:, S] / sqrt(m) with random
  signs D, the Walsh-Hadamard matrix H of the input zero-padded to a power of two, and S a
  sample of coordinates without replacement (Ailon & Chazelle 2009; Tropp 2011). When m
  exceeds the padded size, independent SRHT blocks (new signs and sample) are stacked. Its
  generator and transform live in `esparse.hadamard`; `srht`, `apply_srht` and `SRHTParams`
  are reachable here too.

Shapes: x is (..., d_in), any leading batch axes, -> (..., m). Sizes (d_in, m, c,
block_size) are static Python ints: they set array shapes, so under `jax.jit` / `jax.vmap`
keep them out of the traced arguments (static: use static_argnums / functools.partial).

Dtypes, one policy for every kernel: the output has x's dtype (float32, bfloat16, float16,
float64); matrices are drawn in x's dtype unless `dtype=` asks for another (then the output
has the promoted dtype); every matmul and gather-sum accumulates in at least float32
(`preferred_element_type`), so bfloat16 and float16 inputs lose precision only in the final
rounding to their dtype.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal, cast, get_args

import jax
import jax.numpy as jnp
from jax import lax

from esparse import _checks
from esparse._kernels import accumulator, block_keys, check_sizes, check_x, flat, matmul
from esparse.hadamard import (
    SRHTParams,
    apply_block,
    apply_srht,
    apply_unchecked,
    draw_block,
    padded,
    srht,
)

__all__ = [
    "KINDS",
    "Kind",
    "Projection",
    "SRHTParams",
    "apply_fly",
    "apply_srht",
    "fly",
    "gaussian",
    "project",
    "sparse_sign",
    "srht",
]

Kind = Literal["gaussian", "sparse_sign", "fly", "srht"]  # the kinds of random projection
KINDS: tuple[str, ...] = get_args(Kind)
_UNITS_PER_BLOCK = 256  # canonical block of output units (gaussian, sparse_sign, fly)


def _canonical(kind: str, d_in: int) -> int:
    """Number of output units in one canonical block of `kind`."""
    return padded(d_in) if kind == "srht" else _UNITS_PER_BLOCK


# ---- generators of one canonical block ------------------------------------------------------


def _gaussian_block(kb, d_in: int, m: int, dtype):
    w = jax.random.normal(kb, (d_in, _UNITS_PER_BLOCK), dtype)
    return w * jnp.asarray(1.0 / math.sqrt(m), dtype)


def _sparse_sign_block(kb, d_in: int, m: int, density: float, dtype):
    u = jax.random.uniform(kb, (d_in, _UNITS_PER_BLOCK))
    s = jnp.asarray(1.0 / math.sqrt(m * density), dtype)
    zero = jnp.zeros((), dtype)
    return jnp.where(u < density / 2, s, jnp.where(u < density, -s, zero))


def _fly_block(kb, d_in: int, c: int):
    """(units, c) distinct indices per unit: Floyd's algorithm (uniform c-subsets).

    Step i draws in [0, d_in - c + i] as 32 random bits modulo the range (relative bias below
    d_in / 2^32; one threefry call compiles much faster than `randint`'s two).
    """
    highs = jnp.arange(d_in - c + 1, d_in + 1, dtype=jnp.uint32)
    bits = jax.random.bits(kb, (c, _UNITS_PER_BLOCK), jnp.uint32)
    draws = (bits % highs[:, None]).astype(jnp.int32)
    highs = highs.astype(jnp.int32)
    chosen: list[jax.Array] = []
    for i in range(c):
        t = draws[i]
        dup = functools.reduce(jnp.logical_or, [t == p for p in chosen], jnp.zeros_like(t, bool))
        chosen.append(jnp.where(dup, highs[i] - 1, t))
    return jnp.stack(chosen, axis=1)


# ---- public generators (materialized) -------------------------------------------------------


def _density(density, d_in: int) -> float:
    if density is None:
        return 1.0 / math.sqrt(d_in)
    return _checks.float_in_range("density", density, 0.0, 1.0, low_open=True)


def gaussian(
    key: jax.Array, d_in: int, m: int, dtype: jax.typing.DTypeLike = jnp.float32
) -> jax.Array:
    """Dense Gaussian projection: (d_in, m) with N(0, 1/m) entries, E||x W||^2 = ||x||^2."""
    d_in, m = check_sizes(d_in, m)
    return _gaussian(key, d_in, m, jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _gaussian(key, d_in, m, dtype):
    nb = -(-m // _UNITS_PER_BLOCK)
    blocks = jax.vmap(lambda kb: _gaussian_block(kb, d_in, m, dtype))(block_keys(key, 0, nb))
    return jnp.moveaxis(blocks, 0, 1).reshape(d_in, -1)[:, :m]


def sparse_sign(
    key: jax.Array,
    d_in: int,
    m: int,
    density: float | None = None,
    dtype: jax.typing.DTypeLike = jnp.float32,
) -> jax.Array:
    """Sparse sign projection (d_in, m): +-1/sqrt(m s) w.p. s/2 each, else 0.

    density s in (0, 1]; default 1/sqrt(d_in) (Li et al. 2006); s = 1/3 is Achlioptas 2003.
    E||x W||^2 = ||x||^2.
    """
    d_in, m = check_sizes(d_in, m)
    return _sparse_sign(key, d_in, m, _density(density, d_in), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _sparse_sign(key, d_in, m, density, dtype):
    nb = -(-m // _UNITS_PER_BLOCK)
    blocks = jax.vmap(lambda kb: _sparse_sign_block(kb, d_in, m, density, dtype))(
        block_keys(key, 0, nb)
    )
    return jnp.moveaxis(blocks, 0, 1).reshape(d_in, -1)[:, :m]


def fly(key: jax.Array, d_in: int, m: int, c: int) -> jax.Array:
    """Fly projection (Dasgupta et al. 2017): (m, c) int32, c distinct inputs per unit.

    Unit j computes sum_i x[indices[j, i]]; apply with `apply_fly`. c in [1, d_in].
    """
    d_in, m = check_sizes(d_in, m)
    c = _checks.int_in_range("c", c, 1, d_in)
    return _fly(key, d_in, m, c)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _fly(key, d_in, m, c):
    nb = -(-m // _UNITS_PER_BLOCK)
    blocks = jax.vmap(lambda kb: _fly_block(kb, d_in, c))(block_keys(key, 0, nb))
    return blocks.reshape(-1, c)[:m]


# ---- application ----------------------------------------------------------------------------


def _fly_apply(x, indices):
    """x: (batch, d_in), indices: (units, c) -> (batch, units): one column gather per input.

    c gathers of (batch, units) fused into one loop; mode="clip" drops the bounds masks.
    Sums in at least float32, returned in x's dtype.
    """
    acc = accumulator(x.dtype)
    out = jnp.take(x, indices[:, 0], axis=1, mode="clip").astype(acc)
    for i in range(1, indices.shape[1]):
        out = out + jnp.take(x, indices[:, i], axis=1, mode="clip").astype(acc)
    return out.astype(x.dtype)


@jax.jit
def _fly_apply_checked(x, indices):
    """`_fly_apply`, with NaN in the output column of every unit holding an index outside
    [0, d_in): the device-side rule for indices that are never read back to the host."""
    bad = jnp.any((indices < 0) | (indices >= x.shape[1]), axis=1)
    return jnp.where(bad, jnp.full((), jnp.nan, x.dtype), _fly_apply(x, indices))


def apply_fly(x: jax.Array, indices: jax.Array, *, check_finite: bool = False) -> jax.Array:
    """Fly projection by gather-and-sum. x: (..., d_in), indices: (m, c) -> (..., m).

    A unit with an index outside [0, d_in) gets an all-NaN output column. check_finite=True
    instead raises a ValueError naming x (NaN or inf) or indices (out of range), which syncs.
    """
    check_x(x, check_finite)
    _checks.ndim("indices", indices, 2)
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
    if check_finite and not _checks.is_traced(indices) and indices.size:
        lo, hi = int(jnp.min(indices)), int(jnp.max(indices))
        if lo < 0 or hi >= x.shape[-1]:
            raise ValueError(
                f"indices must lie in [0, d_in={x.shape[-1]}) for x, got range [{lo}, {hi}]"
            )
    out = _fly_apply_checked(flat(x), indices)
    return out if x.ndim == 2 else out.reshape(*x.shape[:-1], out.shape[-1])


# ---- project -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Projection:
    """A validated random projection of `kind` from d_in to m units (static and hashable, so
    it can be a static argument of a jitted function). Built by `Projection.of`.

    dtype (of the matrix: x's dtype unless given), density and c are the kind's arguments
    (None where the kind takes none);
    block_size: None (materialize the matrix) or a multiple of the canonical block."""

    kind: Kind
    d_in: int
    m: int
    block_size: int | None
    dtype: jnp.dtype
    density: float | None
    c: int | None

    @classmethod
    def of(
        cls,
        x: jax.Array,
        m: int,
        kind: Kind = "gaussian",
        block_size: int | None = None,
        *,
        check_finite: bool = False,
        **kind_args: object,
    ) -> Projection:
        """Validate `project`'s arguments for x: (..., d_in); ValueError naming any bad one."""
        check_x(x, check_finite)
        d_in = x.shape[-1]
        m = _checks.positive_int("m", m)
        _checks.one_of("kind", kind, KINDS)
        allowed = {"gaussian": {"dtype"}, "sparse_sign": {"dtype", "density"}, "fly": {"c"}}
        extra = set(kind_args) - allowed.get(kind, set())
        if extra:
            raise ValueError(f"kind_args {sorted(extra)} are not accepted by kind={kind!r}")
        dtype_arg: Any = kind_args.get("dtype", x.dtype)
        dtype = jnp.dtype(dtype_arg)
        density = _density(kind_args.get("density"), d_in) if kind == "sparse_sign" else None
        c = None
        if kind == "fly":
            if "c" not in kind_args:
                raise ValueError("kind='fly' needs c, the number of inputs per unit, got none")
            c = _checks.int_in_range("c", kind_args["c"], 1, d_in)
        if block_size is not None:
            block_size = _checks.positive_int("block_size", block_size)
            canon = _canonical(kind, d_in)
            if block_size % canon:
                raise ValueError(
                    f"block_size must be a multiple of {canon} (the canonical block of "
                    f"kind={kind!r} for d_in={d_in}), got {block_size}"
                )
        return cls(kind, d_in, m, block_size, dtype, density, c)

    def matrix(self, key: jax.Array) -> jax.Array | SRHTParams:
        """The materialized projection (what the public generator of the kind returns)."""
        if self.kind == "gaussian":
            return _gaussian(key, self.d_in, self.m, self.dtype)
        if self.kind == "sparse_sign":
            return _sparse_sign(key, self.d_in, self.m, self.density, self.dtype)
        if self.kind == "fly":
            return _fly(key, self.d_in, self.m, self.c)
        return srht(key, self.d_in, self.m)

    def apply(self, x: jax.Array, matrix: jax.Array | SRHTParams) -> jax.Array:
        """x: (batch, d_in) times a materialized `matrix` -> (batch, m)."""
        if self.kind == "fly":
            return _fly_apply(x, matrix)
        if self.kind == "srht":
            return apply_unchecked(x, cast(SRHTParams, matrix))
        return matmul(x, cast(jax.Array, matrix))

    def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """x: (batch, d_in) -> (batch, m); blocked when block_size is set (traceable)."""
        if self.block_size is None:
            return self.apply(x, self.matrix(key))
        per_step = self.block_size // _canonical(self.kind, self.d_in)
        steps = -(-self.m // self.block_size)
        out = lax.map(lambda s: self._blocks(key, x, s * per_step, per_step), jnp.arange(steps))
        return jnp.moveaxis(out, 0, 1).reshape(x.shape[0], -1)[:, : self.m]

    def _blocks(self, key, x, first_block, n_blocks):
        """Output units of canonical blocks first_block ... first_block + n_blocks - 1."""
        d_in, m = self.d_in, self.m
        keys = block_keys(key, first_block, n_blocks)
        if self.kind == "gaussian":
            w = jax.vmap(lambda kb: _gaussian_block(kb, d_in, m, self.dtype))(keys)
            return matmul(x, jnp.moveaxis(w, 0, 1).reshape(d_in, -1))
        if self.kind == "sparse_sign":
            w = jax.vmap(lambda kb: _sparse_sign_block(kb, d_in, m, self.density, self.dtype))(keys)
            return matmul(x, jnp.moveaxis(w, 0, 1).reshape(d_in, -1))
        if self.kind == "fly":
            idx = jax.vmap(lambda kb: _fly_block(kb, d_in, self.c))(keys)
            return _fly_apply(x, idx.reshape(-1, self.c))
        signs, rows = jax.vmap(lambda kb: draw_block(kb, d_in))(keys)
        out = lax.map(lambda sr: apply_block(x, sr[0], sr[1], m), (signs, rows))
        return jnp.moveaxis(out, 0, 1).reshape(x.shape[0], -1)


_project = jax.jit(lambda spec, key, x: spec(key, x), static_argnums=0)


def project(
    key: jax.Array,
    x: jax.Array,
    m: int,
    kind: Kind = "gaussian",
    block_size: int | None = None,
    *,
    check_finite: bool = False,
    **kind_args: object,
) -> jax.Array:
    """Random projection of x: (..., d_in) -> (..., m), generated from `key`, in x's dtype.

    kind: "gaussian" | "sparse_sign" (kind_args: density, dtype) | "fly" (kind_args: c) |
    "srht". Equals applying the public generator's matrix for the same key. With block_size
    (a multiple of 256, or of the padded d_in for srht) the matrix is regenerated block by
    block inside lax.map, so memory holds one block of it: the result equals the unblocked
    one (bit for bit for fly and srht; to float rounding for the dense kinds, whose matmul
    may sum in another order). NaN and inf propagate to the output; check_finite=True raises
    a ValueError naming x instead (syncs; esparse._checks). m and block_size are static
    ints; dtypes (matrix in x's dtype unless kind_args dtype, float32 accumulation): module
    docstring.
    """
    spec = Projection.of(x, m, kind, block_size, check_finite=check_finite, **kind_args)
    out = _project(spec, key, flat(x))
    return out if x.ndim == 2 else out.reshape(*x.shape[:-1], out.shape[-1])
