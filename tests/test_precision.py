"""Every matmul of the solves, Gram matrices, distances and predictions that claims' verdicts
depend on runs at Precision.HIGHEST (TF32 on GPU and bf16 passes on TPU would otherwise
lose 3-4 digits); training steps keep the backend's default."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core as jex_core

from esparse import info, meanfield, readout, regression

HIGHEST = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)


def _dot_precisions(jaxpr) -> list:
    """precision of every dot_general in a jaxpr, sub-jaxprs (jit, scan, cond, map) included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if isinstance(sub, jex_core.ClosedJaxpr):
                    found += _dot_precisions(sub.jaxpr)
                elif isinstance(sub, jex_core.Jaxpr):
                    found += _dot_precisions(sub)
    return found


rng = np.random.default_rng(0)
PHI = jnp.asarray(rng.standard_normal((40, 12)), jnp.float32)
WIDE = jnp.asarray(rng.standard_normal((12, 40)), jnp.float32)
Y = jnp.asarray(rng.standard_normal((40, 3)), jnp.float32)
LAMS = np.array([1e-2, 1.0, 1e2], np.float32)
LABELS = jnp.asarray(rng.integers(0, 3, 40), jnp.int32)
KEY = jax.random.key(0)

VERDICT_FUNCTIONS = {
    "ridge primal": lambda: regression.ridge(PHI, Y, 1.0),
    "ridge dual": lambda: regression.ridge(WIDE, Y[:12], 1.0),
    "ridge svd": lambda: regression.ridge(PHI, Y, 1.0, solver="svd"),
    "min_norm_lstsq": lambda: regression.min_norm_lstsq(WIDE, Y[:12]),
    "predict": lambda: regression.predict(PHI, Y[:12]),
    "ridge_path eigh": lambda: regression.ridge_path(PHI[:30], Y[:30], PHI[30:], Y[30:], LAMS),
    "ridge_path svd": lambda: regression.ridge_path(
        PHI[:30], Y[:30], PHI[30:], Y[30:], LAMS, method="svd"
    ),
    "ridge_select wide": lambda: regression.ridge_select(WIDE[:8], Y[:8], WIDE[8:], Y[8:12], LAMS),
    "ridge_classifier": lambda: readout.ridge_classifier(
        KEY, PHI[:30], LABELS[:30], PHI[30:], LABELS[30:], 3
    ),
    "mmd": lambda: meanfield.mmd(PHI, PHI + 1.0),
    "mmd bandwidth": lambda: meanfield.mmd(PHI, PHI + 1.0, 2.0),
    "sliced_wasserstein": lambda: meanfield.sliced_wasserstein(KEY, PHI, PHI + 1.0, 8),
    "mi gaussian": lambda: info.mutual_information(PHI[:, :2], PHI[:, 2:4], "gaussian"),
    "mi ksg": lambda: info.mutual_information(PHI[:, :2], PHI[:, 2:4], "ksg"),
    "pca_scores": lambda: info.pca_scores(PHI, 3),
}


@pytest.mark.parametrize("name", list(VERDICT_FUNCTIONS))
def test_verdict_matmuls_run_at_highest_precision(name):
    precisions = _dot_precisions(jax.make_jaxpr(VERDICT_FUNCTIONS[name])().jaxpr)
    if name != "mi ksg":  # KSG's max-norm distances have no matmul
        assert precisions, f"{name}: no dot_general found"
    assert all(p == HIGHEST for p in precisions), f"{name}: {precisions}"


def test_training_steps_keep_the_default_precision():
    params = meanfield.init_particles(KEY, 16, 12)
    run = functools.partial(meanfield.noisy_gd, steps=2, lr=0.1, temperature=0.0, log_every=1)
    precisions = _dot_precisions(jax.make_jaxpr(lambda: run(KEY, params, PHI, Y[:, 0]))().jaxpr)
    assert precisions and all(p is None for p in precisions)
