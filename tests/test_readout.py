import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from esparse import readout


def _blobs(key, n, d=6, classes=3):
    centers = 3.0 * jax.random.normal(key, (classes, d))
    labels = jnp.arange(n) % classes
    x = centers[labels] + jax.random.normal(jax.random.fold_in(key, 1), (n, d))
    return x, labels


def test_ridge_classifier_matches_sklearn_at_the_chosen_lambda():
    x, y = _blobs(jax.random.key(0), 300)
    xt, yt = _blobs(jax.random.key(0), 90)
    key = jax.random.key(5)
    fit = readout.ridge_classifier(key, x, y, xt, yt, 3)
    # rebuild the same fit with sklearn: same scaling, intercept column, split and lambda
    scale = np.sqrt(np.mean(np.sum(np.asarray(x) ** 2, axis=1)))
    design = np.asarray(readout.add_intercept(x / scale))
    test = np.asarray(readout.add_intercept(xt / scale))
    order = np.asarray(jax.random.permutation(key, 300))
    rows = order[60:]
    ref = Ridge(alpha=float(fit.lam), fit_intercept=False).fit(design[rows], np.eye(3)[y[rows]])
    ref_acc = np.mean(ref.predict(test).argmax(1) == np.asarray(yt))
    assert float(fit.test_accuracy) == pytest.approx(ref_acc)
    assert float(fit.test_accuracy) > 0.9


def test_ridge_classifier_vmaps_over_keys_and_flags_edges():
    x, y = _blobs(jax.random.key(1), 200)
    keys = jax.random.split(jax.random.key(2), 4)
    fn = jax.vmap(readout.ridge_classifier, in_axes=(0, None, None, None, None, None))
    fits = fn(keys, x, y, x, y, 3)
    assert fits.test_accuracy.shape == (4,)
    one = readout.ridge_classifier(keys[2], x, y, x, y, 3)
    assert float(fits.test_accuracy[2]) == pytest.approx(float(one.test_accuracy))
    narrow = readout.ridge_classifier(keys[0], x, y, x, y, 3, lams=(1e3,))
    assert bool(narrow.at_edge)


def test_bad_inputs():
    x, y = _blobs(jax.random.key(1), 50)
    with pytest.raises(ValueError, match="phi_test"):
        readout.ridge_classifier(jax.random.key(0), x, y, x[:, :3], y, 3)
    with pytest.raises(ValueError, match="val_fraction"):
        readout.ridge_classifier(jax.random.key(0), x, y, x, y, 3, val_fraction=1.0)
