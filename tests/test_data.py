import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esparse import data


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ESPARSE_CACHE", str(tmp_path / "cache"))


def test_mnist1d_offline_shapes_and_cache(tmp_path):
    ds = data.mnist1d(num_samples=500)
    assert ds.x_train.shape == (400, 40) and ds.x_test.shape == (100, 40)
    assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.int32
    assert set(np.unique(ds.y_train)) <= set(range(10))
    cached = list((tmp_path / "cache").glob("mnist1d_*.npz"))
    assert len(cached) == 1
    again = data.mnist1d(num_samples=500)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_digits_split_and_range():
    ds = data.digits()
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert ds.x_train.shape[1] == 64
    assert float(ds.x_train.max()) <= 1.0 and float(ds.x_train.min()) >= 0.0


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="name"):
        data.load("cifar")


def test_random_and_noisy_labels_are_keyed_and_vmappable():
    labels = jnp.arange(10_000) % 10
    keys = jax.random.split(jax.random.key(0), 4)
    rand = jax.vmap(data.random_labels, in_axes=(0, None, None))(keys, labels, 10)
    assert rand.shape == (4, 10_000)
    assert not np.array_equal(rand[0], rand[1])
    assert abs(float(jnp.mean(rand[0] == labels)) - 0.1) < 0.02
    noisy = data.noisy_labels(keys[0], labels, 0.3, 10)
    # a replaced label equals the true one with prob 1/10: changed fraction = 0.3 * 0.9
    assert abs(float(jnp.mean(noisy != labels)) - 0.27) < 0.02
    with pytest.raises(ValueError, match="fraction"):
        data.noisy_labels(keys[0], labels, 1.5, 10)


def test_relu_teacher_dataset():
    key = jax.random.key(1)
    teacher = data.relu_teacher(key, d=8, bias=-1.5)
    np.testing.assert_allclose(jnp.linalg.norm(teacher.w, axis=1), 1.0, rtol=1e-6)
    ds = data.teacher_dataset(key, teacher, 2000, 500)
    expected = np.maximum(np.asarray(ds.x_test) @ np.asarray(teacher.w[0]) - 1.5, 0.0)
    np.testing.assert_allclose(ds.y_test, expected, rtol=1e-5, atol=1e-6)
    # with the kink 1.5 sd into the tail, P(w.x > 1.5) = 0.0668
    assert abs(float(jnp.mean(ds.y_train > 0)) - 0.0668) < 0.015


def _write_idx(path, array, dtype_code=0x08, compress=False):
    header = bytes([0, 0, dtype_code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    payload = header + array.astype(">u1").tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


def test_load_mnist_idx_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6, dtype=np.uint8)
    _write_idx(tmp_path / "tr-img.gz", images, compress=True)
    _write_idx(tmp_path / "tr-lab", labels)
    _write_idx(tmp_path / "te-img", images[:2])
    _write_idx(tmp_path / "te-lab", labels[:2])
    ds = data.load_mnist(*(tmp_path / n for n in ("tr-img.gz", "tr-lab", "te-img", "te-lab")))
    np.testing.assert_allclose(ds.x_train, images.reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, labels[:2])


def test_corrupt_idx_files_raise(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    _write_idx(tmp_path / "ok", images)
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "truncated").write_bytes(raw[:-10])
    (tmp_path / "magic").write_bytes(b"\x01\x02" + raw[2:])
    for name in ("truncated", "magic"):
        with pytest.raises(ValueError, match="path"):
            data.read_idx(tmp_path / name)


def test_load_mnist_npz_validates(tmp_path):
    x = np.zeros((4, 28, 28), np.uint8)
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    assert data.load_mnist_npz(tmp_path / "ok.npz").x_train.shape == (4, 784)
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=np.arange(3), x_test=x, y_test=np.arange(4))
    with pytest.raises(ValueError, match="labels"):
        data.load_mnist_npz(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="path"):
        data.load_mnist_npz(tmp_path / "junk.npz")


def test_loaders_check_values_where_data_enters_from_the_host(tmp_path):
    images = np.ones((4, 28, 28), np.float32)
    images[1, 3, 3] = np.nan
    labels = np.arange(4, dtype=np.uint8)
    np.savez(tmp_path / "nan.npz", x_train=images, y_train=labels, x_test=images, y_test=labels)
    with pytest.raises(ValueError, match="x_train holds 1 NaN or inf"):
        data.load_mnist_npz(tmp_path / "nan.npz")
