"""Bad input at the public boundary (issue 18): one row per case, each a ValueError raised
before any compute, whose message names the argument and the bad value.

Device (jax) arrays are not read back to check their values (no host sync, esparse._checks):
the value rows use host (numpy) arrays, as data enters from the host through the loaders. A
corrupt dataset cache is not an error: it is rebuilt (tests at the end).
"""

import gzip
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from esparse import data, features, hashing, masks, nn, readout, sparsify, supermasks
from esparse import train as tr


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ESPARSE_CACHE", str(tmp_path / "cache"))


KEY = jax.random.key(0)
X = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
CODES = np.zeros((4, 1), np.uint32)


def _idx(path, array, compress=False):
    """Write an IDX file of uint8 `array`; with compress, gzipped."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    payload = header + np.asarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def _mnist_files(tmp_path, train_labels):
    images = np.zeros((len(train_labels), 28, 28), np.uint8)
    return (
        _idx(tmp_path / "tr-img", images),
        _idx(tmp_path / "tr-lab", np.asarray(train_labels)),
        _idx(tmp_path / "te-img", images[:2]),
        _idx(tmp_path / "te-lab", np.arange(2)),
    )


def _corrupt_gzip(tmp_path):
    """A gzip file with a valid header and a damaged deflate stream (zlib.error inside)."""
    path = _idx(tmp_path / "labels.gz", np.arange(1000) % 10, compress=True)
    raw = bytearray(path.read_bytes())
    for i in range(12, 40):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    return path


def _mnist_with_corrupt_labels(tmp_path):
    train_images, _, test_images, test_labels = _mnist_files(tmp_path, [0, 1])
    return data.load_mnist(train_images, _corrupt_gzip(tmp_path), test_images, test_labels)


def _junk_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    return data.load_mnist_npz(tmp_path / "junk.npz")


def _ridge(y_train, y_test, n_classes=3):
    return readout.ridge_classifier(KEY, X, y_train, X[:4], y_test, n_classes)


def _train(labels):
    model = nn.mlp((5, 3))
    ds = data.Dataset(X, np.asarray(labels, np.int32), X, np.zeros(6, np.int32))
    return tr.train(
        KEY,
        model.init(KEY),
        ds,
        apply_fn=model.apply,
        optimizer=optax.sgd(0.1),
        steps=2,
        batch_size=3,
    )


# (call(tmp_path), the argument's name, the bad value as printed), one row per case
ROWS = [
    # labels outside [0, n_classes)
    pytest.param(
        lambda p: _ridge(np.array([0, 1, 2, 3, 0, 1]), np.zeros(4, int)),
        "y_train",
        "3",
        id="readout-train-label-too-big",
    ),
    pytest.param(
        lambda p: _ridge(np.zeros(6, int), np.array([0, -1, 0, 0])),
        "y_test",
        "-1",
        id="readout-test-label-negative",
    ),
    pytest.param(
        lambda p: data.load_mnist(*_mnist_files(p, [0, 1, 10, 2])),
        "train_labels",
        "10",
        id="load_mnist-label-10",
    ),
    pytest.param(
        lambda p: (
            np.savez(
                p / "m.npz",
                x_train=np.zeros((3, 28, 28), np.uint8),
                y_train=np.array([0, 1, 2]),
                x_test=np.zeros((2, 28, 28), np.uint8),
                y_test=np.array([3, 12]),
            ),
            data.load_mnist_npz(p / "m.npz"),
        ),
        "y_test",
        "12",
        id="load_mnist_npz-label-12",
    ),
    pytest.param(
        lambda p: data.load_mnist(*_mnist_files(p, [0, 1, 2, 3]), n_classes=0),
        "n_classes",
        "0",
        id="load_mnist-n_classes-0",
    ),
    pytest.param(
        lambda p: _train([0, 1, 2, 5, 0, 1]),
        "y_train",
        "5",
        id="train-label-5",
    ),
    # corrupt files
    pytest.param(
        lambda p: data.read_idx(_corrupt_gzip(p)),
        "path",
        "labels.gz",
        id="read_idx-corrupt-gzip",
    ),
    pytest.param(
        _mnist_with_corrupt_labels,
        "path",
        "labels.gz",
        id="load_mnist-corrupt-gzip",
    ),
    pytest.param(
        _junk_npz,
        "path",
        "junk.npz",
        id="load_mnist_npz-corrupt-zip",
    ),
    # esparse.hashing
    pytest.param(lambda p: hashing.flyhash(KEY, X, 8, 9, 2), "k", "9", id="flyhash-k>m"),
    pytest.param(lambda p: hashing.flyhash(KEY, X, 8, 0, 2), "k", "0", id="flyhash-k<1"),
    pytest.param(lambda p: hashing.flyhash(KEY, X, 8, 2, 6), "c", "6", id="flyhash-c>d"),
    pytest.param(lambda p: hashing.flyhash(KEY, X, 0, 1, 2), "m", "0", id="flyhash-m=0"),
    pytest.param(lambda p: hashing.flyhash(KEY, X[0], 8, 2, 2), "x", "(5,)", id="flyhash-x-1d"),
    pytest.param(
        lambda p: hashing.flyhash(KEY, X.astype(np.int32), 8, 2, 2),
        "x",
        "int32",
        id="flyhash-x-int",
    ),
    pytest.param(lambda p: hashing.lsh(KEY, X, 0), "bits", "0", id="lsh-bits=0"),
    pytest.param(lambda p: hashing.lsh(KEY, X[0], 8), "x", "(5,)", id="lsh-x-1d"),
    pytest.param(lambda p: hashing.hamming(CODES, CODES[:, 0]), "b", "(4,)", id="hamming-1d"),
    pytest.param(
        lambda p: hashing.hamming_knn(queries=CODES, database=CODES, k=5),
        "k",
        "5",
        id="hamming_knn-k>n",
    ),
    pytest.param(
        lambda p: hashing.hamming_knn(queries=CODES, database=CODES, k=1, block_size=0),
        "block_size",
        "0",
        id="hamming_knn-block_size=0",
    ),
    pytest.param(
        lambda p: hashing.true_neighbors(X, X, 7), "n_neighbors", "7", id="true_neighbors-n>n_db"
    ),
    pytest.param(
        lambda p: hashing.true_neighbors(X, X, 6, np.arange(6)),
        "n_neighbors",
        "6",
        id="true_neighbors-n=n_db-with-exclude",
    ),
    pytest.param(
        lambda p: hashing.true_neighbors(X, X, 2, np.array([0, 1, 2, 3, 4, 6])),
        "exclude",
        "6",
        id="true_neighbors-exclude-out-of-range",
    ),
    pytest.param(
        lambda p: hashing.true_neighbors(X, X[:, :4], 2), "x_query", "(6, 5)", id="true_nb-cols"
    ),
    pytest.param(
        lambda p: hashing.mean_average_precision(KEY, np.zeros((2, 5)), np.array([[0], [5]])),
        "relevant",
        "5",
        id="map-relevant-out-of-range",
    ),
    pytest.param(
        lambda p: hashing.mean_average_precision(KEY, np.zeros(5), np.array([[0]])),
        "distances",
        "(5,)",
        id="map-distances-1d",
    ),
    pytest.param(
        lambda p: hashing.mean_average_precision(
            KEY, np.zeros((2, 5)), np.array([[0], [1]]), np.array([0, -2])
        ),
        "exclude",
        "-2",
        id="map-exclude-negative",
    ),
    pytest.param(lambda p: hashing.unpack_bits(CODES, 0), "m", "0", id="unpack_bits-m=0"),
    # esparse.features
    pytest.param(
        lambda p: features.relu_features(X, np.zeros((4, 3)), np.zeros(3)),
        "w",
        "(4, 3)",
        id="relu_features-w-rows",
    ),
    pytest.param(
        lambda p: features.relu_features(X, np.zeros((5, 3)), np.zeros(4)),
        "b",
        "(4,)",
        id="relu_features-b-shape",
    ),
    pytest.param(
        lambda p: features.relu_features(X[0], np.zeros((5, 3)), np.zeros(3)),
        "x",
        "(5,)",
        id="relu_features-x-1d",
    ),
    pytest.param(
        lambda p: features.fourier_features(X, np.zeros((4, 3)), np.zeros(3)),
        "w",
        "(4, 3)",
        id="fourier_features-w-rows",
    ),
    # k out of range
    pytest.param(lambda p: masks.top_k_mask(X, 31), "k", "31", id="top_k_mask-k>n"),
    pytest.param(lambda p: masks.top_k_mask(X, -1), "k", "-1", id="top_k_mask-k<0"),
    pytest.param(lambda p: masks.top_k_mask(X, 2.5), "k", "2.5", id="top_k_mask-k-float"),
    pytest.param(lambda p: supermasks.edge_popup_mask(X, 31), "k", "31", id="edge_popup_mask-k>n"),
    pytest.param(lambda p: supermasks.edge_popup_mask(X, 0), "k", "0", id="edge_popup_mask-k<1"),
    pytest.param(lambda p: sparsify.kwta(X, 6), "k", "6", id="kwta-k>n"),
    pytest.param(lambda p: sparsify.kwta(X, 0), "k", "0", id="kwta-k<1"),
]


@pytest.mark.parametrize(("call", "name", "value"), ROWS)
def test_bad_input_raises_a_value_error_naming_argument_and_value(tmp_path, call, name, value):
    with pytest.raises(ValueError) as err:
        call(tmp_path)
    message = str(err.value)
    assert name in message, message
    assert value in message, message


def test_device_labels_are_not_read_but_poison_the_readout():
    """jax labels out of range: no sync to check them; the accuracies come out NaN."""
    y = jnp.array([0, 1, 2, 3, 0, 1])
    out = readout.ridge_classifier(KEY, jnp.asarray(X), y, jnp.asarray(X[:4]), y[:4], 3)
    assert np.isnan(out.test_accuracy) and np.isnan(out.train_accuracy)
    ok = readout.ridge_classifier(KEY, jnp.asarray(X), y % 3, jnp.asarray(X[:4]), y[:4] % 3, 3)
    assert np.isfinite(ok.test_accuracy)


def test_traced_k_is_not_checked_on_the_host():
    mask = jax.jit(masks.top_k_mask)(jnp.asarray(X), jnp.int32(4))
    assert int(mask.sum()) == 4


# ---- a corrupt mnist1d cache is rebuilt, not trusted ----------------------------------------


def _damage_deflate(path):
    """Rewrite a valid cache as a compressed .npz whose first member's stream is damaged."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez_compressed(path, **arrays)
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 8, start + 40):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def _bad_labels(path):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["y"] = arrays["y"] + 10
    np.savez(path, **arrays)


CORRUPTIONS = {
    "junk": lambda path: path.write_bytes(b"not a zip file"),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:200]),
    "damaged-deflate": _damage_deflate,
    "labels-out-of-range": _bad_labels,
    "array-missing": lambda path: np.savez(path, x=np.zeros((3, 40))),
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_corrupt_mnist1d_cache_is_deleted_and_rebuilt(tmp_path, damage):
    fresh = data.mnist1d(num_samples=100)
    (path,) = (tmp_path / "cache").glob("mnist1d_*.npz")
    CORRUPTIONS[damage](path)
    with pytest.warns(UserWarning, match="corrupt"):
        again = data.mnist1d(num_samples=100)
    for a, b in zip(fresh, again, strict=True):
        np.testing.assert_array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file is valid: read back without a warning
        data.mnist1d(num_samples=100)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]  # no temp files
