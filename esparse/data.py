"""Datasets as arrays: MNIST-1D, scikit-learn digits, synthetic teachers, label transforms,
and a loader for a user's own MNIST files.

Everything here returns float32 inputs and int32 labels. Generated MNIST-1D arrays are cached
as .npz keyed by a hash of the generation arguments (written atomically). Random transforms take
a PRNG key first and are jittable and vmappable, so each seed can get its own labels.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from esparse import _checks
from esparse.io import atomic_write

__all__ = [
    "DATASETS",
    "Dataset",
    "Teacher",
    "cache_dir",
    "digits",
    "load",
    "load_mnist",
    "load_mnist_npz",
    "mnist1d",
    "noisy_labels",
    "one_hot",
    "random_labels",
    "read_idx",
    "relu_teacher",
    "standardize",
    "teacher_dataset",
    "teacher_output",
]


class Dataset(NamedTuple):
    """A train/test split. x_*: (n, d) float32; y_*: (n,) int32 labels or (n, k) targets."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


DATASETS = ("mnist1d", "digits")


def cache_dir() -> Path:
    """Where generated arrays are cached: $ESPARSE_CACHE, else ~/.cache/esparse."""
    return Path(os.environ.get("ESPARSE_CACHE", Path.home() / ".cache" / "esparse"))


_MNIST1D_ARRAYS = ("x", "y", "x_test", "y_test")
_MNIST1D_CLASSES = 10
# what np.load and reading an array of a damaged .npz raise
_NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def _read_mnist1d_cache(path: Path) -> tuple[np.ndarray, ...] | None:
    """The cached arrays (x, y, x_test, y_test), or None when the file is missing or is not a
    valid cache (unreadable, an array missing, bad shapes or dtypes, labels outside [0, 10),
    NaN or inf inputs)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y, x_test, y_test = (np.asarray(f[name]) for name in _MNIST1D_ARRAYS)
    except _NPZ_ERRORS:
        return None
    for xs, ys in ((x, y), (x_test, y_test)):
        if (
            xs.ndim != 2
            or ys.shape != xs.shape[:1]
            or xs.dtype.kind != "f"
            or ys.dtype.kind not in "iu"
            or not np.all(np.isfinite(xs))
            or (ys.size and (ys.min() < 0 or ys.max() >= _MNIST1D_CLASSES))
        ):
            return None
    return x, y, x_test, y_test


def mnist1d(num_samples: int = 5000, train_split: float = 0.8, seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020) from the `mnist1d` package's offline generator.

    Defaults give the standard 4000 train / 1000 test split of length-40 signals, 10 classes.
    The package's own loader downloads a pickle; this calls its generator instead (no network)
    and caches the arrays as .npz under `cache_dir()`, written atomically. A cache file that
    does not read back as valid arrays (a damaged zip or deflate stream, a missing array, bad
    shapes, labels outside [0, 10), NaN inputs) is deleted and regenerated, with a warning.
    """
    _checks.positive_int("num_samples", num_samples)
    _checks.float_in_range("train_split", train_split, 0.0, 1.0, low_open=True, high_open=True)
    args = {"num_samples": int(num_samples), "train_split": float(train_split), "seed": int(seed)}
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d_{digest}.npz"
    arrays = _read_mnist1d_cache(path)
    if arrays is None:
        if path.exists():
            warnings.warn(f"mnist1d cache {str(path)!r} is corrupt: rebuilding it", stacklevel=2)
            path.unlink(missing_ok=True)
        from mnist1d.data import get_dataset_args, make_dataset

        gen_args = get_dataset_args()
        for name, value in args.items():
            setattr(gen_args, name, value)
        raw = make_dataset(gen_args)
        arrays = tuple(np.asarray(raw[name]) for name in _MNIST1D_ARRAYS)
        buffer = io.BytesIO()
        np.savez(buffer, **dict(zip(_MNIST1D_ARRAYS, arrays, strict=True)))  # type: ignore[arg-type]
        atomic_write(path, buffer.getvalue())
    return _as_dataset(*arrays, n_classes=_MNIST1D_CLASSES)


def digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's `load_digits` (1797 8x8 images, 10 classes), pixels scaled to [0, 1],
    split at random (numpy Generator(seed)) into train and test."""
    from sklearn.datasets import load_digits

    _checks.float_in_range("test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    bunch = load_digits()
    x, y = bunch.data / 16.0, bunch.target
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return _as_dataset(x[train], y[train], x[test], y[test], n_classes=10)


def load(name: str, **kwargs: object) -> Dataset:
    """A bundled dataset by name: "mnist1d" or "digits"."""
    _checks.one_of("name", name, set(DATASETS))
    loaders: dict[str, Callable[..., Dataset]] = {"mnist1d": mnist1d, "digits": digits}
    return loaders[name](**kwargs)


def _as_dataset(x_train, y_train, x_test, y_test, *, n_classes: int) -> Dataset:
    """Host arrays as a Dataset on the device, their values checked once, here (where data
    enters from the host, so the kernels that use it need not read it back): finite inputs,
    int labels in [0, n_classes)."""
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        _checks.finite(name, np.asarray(x))
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        _checks.labels(name, np.asarray(y), n_classes)
    return Dataset(
        jnp.asarray(x_train, jnp.float32),
        jnp.asarray(y_train, jnp.int32),
        jnp.asarray(x_test, jnp.float32),
        jnp.asarray(y_test, jnp.int32),
    )


def standardize(data: Dataset) -> Dataset:
    """Inputs centred and scaled per feature with the train set's mean and std."""
    mean = data.x_train.mean(axis=0)
    std = jnp.where(data.x_train.std(axis=0) > 0, data.x_train.std(axis=0), 1.0)
    return data._replace(x_train=(data.x_train - mean) / std, x_test=(data.x_test - mean) / std)


def one_hot(labels: jax.Array, n_classes: int) -> jax.Array:
    """labels: (n,) int -> (n, n_classes) float32 one-hot targets."""
    return jax.nn.one_hot(labels, _checks.positive_int("n_classes", n_classes), dtype=jnp.float32)


def random_labels(key: jax.Array, labels: jax.Array, n_classes: int) -> jax.Array:
    """Labels drawn uniformly from n_classes, independent of the inputs (Zhang et al. 2017).

    labels: (n,) -> (n,) int32. Only the shape of `labels` is used.
    """
    n_classes = _checks.positive_int("n_classes", n_classes)
    return jax.random.randint(key, labels.shape, 0, n_classes, dtype=jnp.int32)


def noisy_labels(key: jax.Array, labels: jax.Array, fraction: float, n_classes: int) -> jax.Array:
    """Each label replaced, with probability `fraction`, by a uniform draw over n_classes (which
    can equal the true label). labels: (n,) -> (n,) int32."""
    _checks.float_in_range("fraction", fraction, 0.0, 1.0)
    flip_key, label_key = jax.random.split(key)
    flip = jax.random.bernoulli(flip_key, fraction, labels.shape)
    return jnp.where(flip, random_labels(label_key, labels, n_classes), labels).astype(jnp.int32)


class Teacher(NamedTuple):
    """A sum of ReLU neurons y = sum_j v_j relu(w_j . x + b_j). w: (j, d), b: (j,), v: (j,)."""

    w: jax.Array
    b: jax.Array
    v: jax.Array


def teacher_output(teacher: Teacher, x: jax.Array) -> jax.Array:
    """x: (n, d) -> (n,) the teacher's output."""
    return jax.nn.relu(x @ teacher.w.T + teacher.b) @ teacher.v


def relu_teacher(
    key: jax.Array,
    d: int,
    n_neurons: int = 1,
    *,
    bias: float | None = 0.0,
    weight_norm: float = 1.0,
) -> Teacher:
    """Random ReLU teacher: unit directions w_j scaled to `weight_norm`, output weights v_j = 1.

    bias: a fixed bias for every neuron, or None for biases drawn N(0, 1). For x ~ N(0, I_d),
    w.x ~ N(0, weight_norm^2), so bias = 0 puts the kink in the bulk of the data and a negative
    bias of a few weight norms puts it in the tail (Yehudai & Shamir 2019, single neuron).
    """
    d = _checks.positive_int("d", d)
    n_neurons = _checks.positive_int("n_neurons", n_neurons)
    _checks.float_in_range("weight_norm", weight_norm, 0.0, np.inf, low_open=True, high_open=True)
    w_key, b_key = jax.random.split(key)
    w = jax.random.normal(w_key, (n_neurons, d))
    w = weight_norm * w / jnp.linalg.norm(w, axis=1, keepdims=True)
    b = jax.random.normal(b_key, (n_neurons,)) if bias is None else jnp.full((n_neurons,), bias)
    return Teacher(w, b.astype(jnp.float32), jnp.ones((n_neurons,), jnp.float32))


def teacher_dataset(
    key: jax.Array, teacher: Teacher, n_train: int, n_test: int, noise: float = 0.0
) -> Dataset:
    """Gaussian inputs x ~ N(0, I_d) labelled by `teacher` plus N(0, noise^2) on train targets.

    Returns y_* of shape (n,) float32 (regression targets).
    """
    n_train = _checks.positive_int("n_train", n_train)
    n_test = _checks.positive_int("n_test", n_test)
    _checks.float_in_range("noise", noise, 0.0, np.inf, high_open=True)
    d = teacher.w.shape[1]
    k_train, k_test, k_noise = jax.random.split(key, 3)
    x_train = jax.random.normal(k_train, (n_train, d))
    x_test = jax.random.normal(k_test, (n_test, d))
    y_train = teacher_output(teacher, x_train) + noise * jax.random.normal(k_noise, (n_train,))
    return Dataset(x_train, y_train, x_test, teacher_output(teacher, x_test))


# --- a user's own MNIST files -------------------------------------------------------------

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (the MNIST format; gzipped when the name ends in .gz).

    Validates the magic number (two zero bytes, a known dtype code, 1-3 dimensions) and that the
    payload size matches the header; raises ValueError naming `path` otherwise.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a damaged deflate stream
        raise ValueError(f"path {str(path)!r} could not be read as IDX: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"path {str(path)!r} has a bad IDX magic number {raw[:4].hex()!r}")
    n_dims = raw[3]
    if not 1 <= n_dims <= 3:
        raise ValueError(f"path {str(path)!r} declares {n_dims} dimensions; expected 1 to 3")
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise ValueError(f"path {str(path)!r} is truncated inside its IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    dtype = _IDX_DTYPES[raw[2]]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"path {str(path)!r} holds {len(raw) - header} data bytes; header shape {shape} "
            f"needs {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _mnist_arrays(
    images: np.ndarray, labels: np.ndarray, names: tuple[str, str], n_classes: int
) -> tuple:
    """names: the arguments (or arrays) the images and labels came from, for the errors."""
    if images.ndim not in (2, 3):
        raise ValueError(f"{names[0]} images must be (n, 28, 28) or (n, 784), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{names[1]} labels must be (n,) with n = {images.shape[0]}, got {labels.shape}"
        )
    _checks.labels(names[1], labels, n_classes)
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    if np.issubdtype(images.dtype, np.integer):
        x /= 255.0
    return x, labels.astype(np.int32)


def load_mnist(
    train_images: str | os.PathLike,
    train_labels: str | os.PathLike,
    test_images: str | os.PathLike,
    test_labels: str | os.PathLike,
    *,
    n_classes: int = 10,
) -> Dataset:
    """A user's MNIST-style IDX files (gzipped or not) as a Dataset, images flattened to
    (n, 784) in [0, 1], labels checked to lie in [0, n_classes). Nothing is downloaded or
    unpickled. A file that cannot be read or parsed is a ValueError naming its path."""
    n_classes = _checks.positive_int("n_classes", n_classes)
    names = ("train_images", "train_labels"), ("test_images", "test_labels")
    x_tr, y_tr = _mnist_arrays(read_idx(train_images), read_idx(train_labels), names[0], n_classes)
    x_te, y_te = _mnist_arrays(read_idx(test_images), read_idx(test_labels), names[1], n_classes)
    return _as_dataset(x_tr, y_tr, x_te, y_te, n_classes=n_classes)


def load_mnist_npz(path: str | os.PathLike, *, n_classes: int = 10) -> Dataset:
    """A user's MNIST .npz with arrays x_train, y_train, x_test, y_test (the Keras layout),
    read with allow_pickle=False; labels checked to lie in [0, n_classes)."""
    n_classes = _checks.positive_int("n_classes", n_classes)
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(getattr(f, "files", ()))
            names = ("x_train", "y_train", "x_test", "y_test")
            arrays = {name: f[name] for name in names if name in files}
    except _NPZ_ERRORS as err:
        raise ValueError(f"path {str(path)!r} is not a readable .npz: {err}") from err
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise ValueError(f"path {str(path)!r} lacks arrays {missing}")
    x_tr, y_tr = _mnist_arrays(arrays["x_train"], arrays["y_train"], names[:2], n_classes)
    x_te, y_te = _mnist_arrays(arrays["x_test"], arrays["y_test"], names[2:], n_classes)
    return _as_dataset(x_tr, y_tr, x_te, y_te, n_classes=n_classes)
