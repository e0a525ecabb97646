"""Linear readouts of fixed features: a ridge classifier whose lambda is chosen on a validation
split drawn from a key, so a whole population of readouts is one vmapped call.

Used to measure how linearly useful a representation is (Dasgupta et al. 2017; Mukherjee &
Huberman 2023; the random-network claims of Rahimi & Recht 2008).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from esparse import _checks, regression

__all__ = ["DEFAULT_LAMS", "Readout", "add_intercept", "ridge_classifier"]

DEFAULT_LAMS = tuple(float(10.0**e) for e in range(-5, 5))


class Readout(NamedTuple):
    """Result of `ridge_classifier` (arrays, so vmappable over seeds)."""

    test_accuracy: jax.Array  # ()
    train_accuracy: jax.Array  # () on the fitting split
    lam: jax.Array  # () chosen lambda
    at_edge: jax.Array  # () bool: chosen lambda at an end of the grid


def add_intercept(phi: jax.Array) -> jax.Array:
    """phi: (n, N) -> (n, N + 1) with a constant column scaled to phi's RMS row norm."""
    scale = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(phi), axis=1)))
    return jnp.concatenate([phi, jnp.full((phi.shape[0], 1), scale, phi.dtype)], axis=1)


def ridge_classifier(
    key: jax.Array,
    phi_train: jax.Array,
    y_train: jax.Array,
    phi_test: jax.Array,
    y_test: jax.Array,
    n_classes: int,
    *,
    lams: tuple[float, ...] = DEFAULT_LAMS,
    val_fraction: float = 0.2,
) -> Readout:
    """Ridge regression on one-hot targets, lambda chosen by validation squared loss.

    phi_train: (n, N), y_train: (n,) int labels, phi_test: (n_test, N), y_test: (n_test,).
    The features are scaled to unit mean squared row norm (so the lambda grid means the same at
    every width) and given an intercept column. `key` draws the validation split (a fraction
    `val_fraction` of the train rows); the readout is fitted on the remaining rows at the
    chosen lambda. Predictions are argmax over classes, computed at full float32 precision
    (`lax.Precision.HIGHEST`) like the solve. NaN or inf in the features gives NaN
    accuracies and lambda (esparse._checks). Labels must lie in [0, n_classes): host labels
    (numpy) outside it are a ValueError naming them; device labels are not read (no sync),
    and give NaN accuracies instead.
    """
    n_classes = _checks.positive_int("n_classes", n_classes)
    _checks.float_in_range("val_fraction", val_fraction, 0.0, 1.0, low_open=True, high_open=True)
    _checks.ndim("phi_train", phi_train, 2)
    _checks.ndim("phi_test", phi_test, 2)
    _checks.same_length("phi_train", phi_train, "y_train", y_train)
    _checks.same_length("phi_test", phi_test, "y_test", y_test)
    if phi_train.shape[1] != phi_test.shape[1]:
        raise ValueError(
            f"phi_test must have {phi_train.shape[1]} columns like phi_train, got {phi_test.shape}"
        )
    _checks.labels("y_train", y_train, n_classes)
    _checks.labels("y_test", y_test, n_classes)
    scale = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(phi_train), axis=1))) + 1e-12
    train_all = add_intercept(phi_train / scale)
    test = add_intercept(phi_test / scale)
    targets = jax.nn.one_hot(y_train, n_classes, dtype=train_all.dtype)
    grid = np.asarray(lams, train_all.dtype)  # on the host: ridge_select checks the grid there
    selection, fit_rows = regression.ridge_holdout(
        key, train_all, targets, grid, val_fraction=val_fraction
    )

    labels_ok = _checks.labels_ok(y_train, n_classes) & _checks.labels_ok(y_test, n_classes)

    def accuracy(phi, labels):
        scores = jnp.matmul(phi, selection.weights, precision=lax.Precision.HIGHEST)
        correct = jnp.mean(jnp.argmax(scores, axis=1) == labels)
        return jnp.where(jnp.all(jnp.isfinite(scores)) & labels_ok, correct, jnp.nan)

    return Readout(
        accuracy(test, y_test),
        accuracy(train_all[fit_rows], y_train[fit_rows]),
        selection.lam,
        selection.at_edge,
    )
