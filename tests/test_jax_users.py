"""The kernels in a JAX user's hands (issue 27): static sizes under jit and vmap, the k /
fraction keywords, one dtype policy, leading batch axes, the engine's errors before user code,
one prunable default, hamming_knn's keyword form."""

import functools

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import esparse
from esparse import engine, hashing, masks, nn, projection, pruning, sparsify
from esparse.data import Dataset

KEY = jax.random.key(0)
X = jax.random.normal(jax.random.key(1), (6, 64))

# ------------------------------------------------------------------ static sizes (item 1)

STATIC = "must be static .*static: use static_argnums / functools.partial"


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: jax.jit(esparse.kwta)(X, 5), "k"),
        (lambda: jax.jit(esparse.kwta_mask)(X, 5), "k"),
        (lambda: jax.jit(lambda x, f: esparse.kwta(x, fraction=f))(X, 0.1), "fraction"),
        (lambda: jax.vmap(lambda k: esparse.kwta(X, k))(jnp.arange(1, 4)), "k"),
        (lambda: jax.jit(esparse.expand_and_sparsify)(KEY, X, 200, 10), "m"),
        (
            lambda: jax.jit(lambda k, x, n: esparse.expand_and_sparsify(k, x, 200, n))(KEY, X, 10),
            "k",
        ),
        (lambda: jax.jit(esparse.project)(KEY, X, 200), "m"),
        (lambda: jax.jit(esparse.flyhash, static_argnums=2)(KEY, X, 64, 4, 3), "k"),
        (lambda: jax.jit(esparse.gaussian, static_argnums=1)(KEY, 64, 128), "m"),
    ],
)
def test_traced_sizes_are_refused_with_the_fix(call, name):
    with pytest.raises(ValueError, match=f"^{name} is .*{STATIC}"):
        call()


def test_static_sizes_work_under_jit():
    want = sparsify.kwta(X, 5)
    np.testing.assert_array_equal(jax.jit(esparse.kwta, static_argnums=1)(X, 5), want)
    np.testing.assert_array_equal(jax.jit(functools.partial(esparse.kwta, k=5))(X), want)
    es = jax.jit(esparse.expand_and_sparsify, static_argnames=("m", "k"))
    np.testing.assert_array_equal(
        es(KEY, X, m=200, k=10), esparse.expand_and_sparsify(KEY, X, 200, 10)
    )


# ------------------------------------------------------------------ k and fraction (item 2)


def test_fraction_keyword_everywhere_and_float_k_deprecated():
    es = esparse.expand_and_sparsify(KEY, X, 200, fraction=0.05)  # 10 of 200
    np.testing.assert_array_equal(es, esparse.expand_and_sparsify(KEY, X, 200, 10))
    fly = hashing.flyhash(KEY, X, 64, c=3, fraction=0.25)  # 16 of 64
    np.testing.assert_array_equal(fly, hashing.flyhash(KEY, X, 64, 16, 3))
    with pytest.warns(DeprecationWarning, match="pass fraction=0.25"):
        old = hashing.flyhash(KEY, X, 64, 0.25, 3)
    np.testing.assert_array_equal(old, fly)
    with pytest.raises(ValueError, match=r"k must be an int count in \[1, 200\], got 10.0"):
        esparse.expand_and_sparsify(KEY, X, 200, 0.05 * 200)
    with pytest.raises(ValueError, match="c, the number of inputs summed per unit, is required"):
        hashing.flyhash(KEY, X, 64, 16)


# ------------------------------------------------------------------ dtypes (item 3)

# Relative tolerance of each dtype against a float32 reference built from the same rounded
# inputs and matrix: with float32 accumulation the only error is the final rounding to the
# dtype (half an ulp; one ulp allowed). Accumulating 64 products in bfloat16 would not pass.
TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2.0**-7, jnp.float16: 2.0**-10}
# ... relative to |reference| + 1% of its largest entry (sums that cancel to near zero carry
# the float32 accumulation error of the large terms)


@pytest.mark.parametrize("dtype", list(TOL), ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize(
    ("kind", "kw"), [("gaussian", {}), ("sparse_sign", {}), ("fly", {"c": 4}), ("srht", {})]
)
def test_project_keeps_dtype_and_accumulates_in_float32(dtype, kind, kw):
    x = X.astype(dtype)
    out = projection.project(KEY, x, 96, kind, **kw)
    assert out.dtype == dtype and out.shape == (6, 96)
    spec = projection.Projection.of(x, 96, kind, **kw)
    matrix = spec.matrix(KEY)
    if kind in ("gaussian", "sparse_sign"):
        assert matrix.dtype == dtype  # drawn in the compute dtype
        ref = np.asarray(x, np.float64) @ np.asarray(matrix, np.float64)
    elif kind == "fly":
        ref = np.asarray(x, np.float64)[:, np.asarray(matrix)].sum(-1)
    else:
        ref = np.asarray(projection.project(KEY, x.astype(jnp.float32), 96, kind), np.float64)
    scale = np.abs(ref) + 1e-2 * np.abs(ref).max()
    assert np.all(np.abs(np.asarray(out, np.float64) - ref) <= TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", list(TOL), ids=lambda d: jnp.dtype(d).name)
def test_expand_and_sparsify_dtype_and_leading_axes(dtype):
    x = X.astype(dtype).reshape(2, 3, 64)
    out = esparse.expand_and_sparsify(KEY, x, 200, 10)
    assert out.dtype == dtype and out.shape == (2, 3, 200)
    # the same as its two steps, in the dtype, and as the flattened batch
    np.testing.assert_array_equal(out, sparsify.kwta(projection.project(KEY, x, 200), 10))
    flat = esparse.expand_and_sparsify(KEY, x.reshape(6, 64), 200, 10)
    np.testing.assert_array_equal(out.reshape(6, 200), flat)
    if dtype == jnp.float32:  # the sparse forms keep the leading axes too
        values, idx = esparse.expand_and_sparsify(KEY, x, 200, 10, output="indices")
        assert values.shape == idx.shape == (2, 3, 10) and values.dtype == dtype
    # winners agree with a float32 reference on the same rounded inputs and matrix, up to
    # near-ties that the final rounding to the dtype merges (at least 90% of them)
    matrix = projection.Projection.of(x, 200).matrix(KEY).astype(jnp.float32)
    ref = np.asarray(sparsify.kwta_mask(x.astype(jnp.float32) @ matrix, 10))
    if dtype == jnp.float32:
        np.testing.assert_array_equal(out != 0, ref)
    else:
        assert np.mean(np.asarray(out != 0)[ref]) >= 0.9


# ------------------------------------------------------------------ the engine (item 4)


class _Net(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        return fnn.Dense(3)(x)


def _data(labels=np.int32):
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(labels)
    return Dataset(jnp.asarray(x), jnp.asarray(y), jnp.asarray(x), jnp.asarray(y))


def test_train_seeds_checks_the_seed_axis_before_calling_apply_fn():
    calls = []
    model = _Net()

    def apply_fn(params, x, key, train):
        calls.append(1)
        return model.apply({"params": params}, x)

    keys = jax.random.split(KEY, 4)
    params = model.init(KEY, jnp.zeros((1, 4)))["params"]  # forgot jax.vmap(model.init)
    kw = dict(apply_fn=apply_fn, optimizer=optax.sgd(0.1), steps=2, batch_size=8)
    with pytest.raises(ValueError, match=r"params\['Dense_0'\]\['bias'\] must have a leading "):
        engine.train_seeds(keys, params, _data(), **kw)
    assert not calls
    with pytest.raises(ValueError, match=r"params = jax.vmap\(model.init\)\(keys\)"):
        engine.train_seeds(keys, params, _data(), **kw)
    with pytest.raises(ValueError, match="keys must be one .* got a Python list of 4"):
        engine.train_seeds(list(keys), params, _data(), **kw)
    stacked = jax.vmap(lambda k: model.init(k, jnp.zeros((1, 4)))["params"])(keys)
    with pytest.raises(ValueError, match="data.y_train must hold int class labels .*float32"):
        engine.train_seeds(keys, stacked, _data(np.float32), **kw)
    assert not calls


def test_vmap_seeds_takes_jax_habits():
    def fn(key, x, scale=1.0):
        return scale * jnp.sum(x) + jax.random.uniform(key)

    keys = jax.random.split(KEY, 4)
    xs = jnp.arange(8.0).reshape(4, 2)
    want = jnp.stack([fn(keys[i], xs[i], 2.0) for i in range(4)])
    np.testing.assert_allclose(engine.vmap_seeds(fn, keys, xs, in_axes=0, scale=2.0), want)
    np.testing.assert_allclose(engine.vmap_seeds(fn, keys, xs, in_axes=(0,), scale=2.0), want)
    with pytest.raises(ValueError, match="keys must be one .* jax.random.split"):
        engine.vmap_seeds(fn, list(keys), xs)
    with pytest.raises(ValueError, match=r"args\[0\] must have a leading seed axis .*in_axes None"):
        engine.vmap_seeds(fn, keys, xs[:3], in_axes=0)
    with pytest.raises(ValueError, match="in_axes must be 0, None, or a tuple"):
        engine.vmap_seeds(fn, keys, xs, in_axes=1)


# ------------------------------------------------------------------ pruning (item 6)


def test_one_prunable_default_for_every_pruning_function():
    model = nn.mlp((8, 16, 4))
    params = model.init(KEY)
    spec = nn.kernel_mask_spec(params)  # kernels only: here, the leaves with ndim >= 2
    mask = pruning.magnitude_prune(params, 0.8)
    same = jax.tree.map(
        lambda a, b: bool((a == b).all()), mask, pruning.magnitude_prune(params, 0.8, prunable=spec)
    )
    assert jax.tree.all(same)
    assert float(masks.density(mask)) == pytest.approx(0.2, abs=0.01)  # biases not counted
    assert float(masks.density(mask, prunable=True)) > 0.2  # all-True biases counted
    for leaf in jax.tree.leaves(mask):
        if leaf.ndim == 1:
            assert leaf.all()
    everything = pruning.magnitude_prune(params, 0.5, prunable=True)
    assert float(masks.density(everything, prunable=True)) == pytest.approx(0.5, abs=0.01)
    rand = pruning.random_mask(KEY, params, 0.3)
    assert all(leaf.all() for leaf in jax.tree.leaves(rand) if leaf.ndim == 1)
    assert float(masks.density(rand)) == pytest.approx(0.3, abs=0.01)
    again = pruning.prune_remaining(params, mask, 0.5)
    assert float(masks.density(again)) == pytest.approx(0.1, abs=0.01)


# ------------------------------------------------------------------ hamming_knn (item 9)


def test_hamming_knn_keyword_form_and_deprecated_positional():
    codes = hashing.flyhash(KEY, X, 64, 8, 3)
    dist, idx = hashing.hamming_knn(queries=codes[:2], database=codes, k=3)
    np.testing.assert_array_equal(idx[:, 0], [0, 1])
    with pytest.warns(DeprecationWarning, match="queries=..., database=..., k=..."):
        old = hashing.hamming_knn(codes, codes[:2], 3)
    np.testing.assert_array_equal(old[1], idx)
    with pytest.raises(ValueError, match="needs queries=, database= and k="):
        hashing.hamming_knn(queries=codes[:2], database=codes)
