"""Benchmark group `analysis`: random-feature solves and mutual information against
scikit-learn on the same inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import esparse
from experiments.bench.harness import row, timed_pair


def _solve_vs_sklearn(ours, peer, phi, y) -> tuple[float, float, float]:
    """ms of ours(phi, y), ms of peer.fit on the same arrays, max |weight difference|."""
    phin, yn = np.asarray(phi), np.asarray(y)
    ms, peer_ms = timed_pair(lambda: ours(phi, y), lambda: peer.fit(phin, yn), 3)
    return ms, peer_ms, float(np.max(np.abs(np.asarray(ours(phi, y)) - peer.coef_.T)))


def analysis() -> list[dict]:
    """Random-feature solves and mutual information vs scikit-learn on the same inputs:
    ridge (n=4000, N=2048 random ReLU features, 10 one-hot targets) vs sklearn Ridge;
    min-norm least squares (n=1000, N=2000) vs sklearn LinearRegression (scipy lstsq); KSG
    mutual information (n=4000, k=3, 1-D) vs sklearn mutual_info_regression."""
    from sklearn.feature_selection import mutual_info_regression
    from sklearn.linear_model import LinearRegression, Ridge

    g = "analysis"
    rows = []
    rng = np.random.default_rng(0)
    for n, n_feat, what in ((4000, 2048, "ridge"), (1000, 2000, "min-norm")):
        x = jnp.asarray(rng.standard_normal((n, 40), dtype=np.float32))
        phi = esparse.random_relu_features(jax.random.key(0), x, n_feat)
        y = jax.nn.one_hot(jnp.asarray(rng.integers(0, 10, n)), 10)
        if what == "ridge":
            ours = jax.jit(lambda a, b: esparse.ridge(a, b, 100.0))
            peer, peer_name = Ridge(alpha=100.0, fit_intercept=False), "sklearn Ridge"
        else:
            ours = jax.jit(esparse.min_norm_lstsq)
            peer, peer_name = LinearRegression(fit_intercept=False), "sklearn LinReg"
        ms, peer_ms, diff = _solve_vs_sklearn(ours, peer, phi, y)
        name = f"{what} n={n} N={n_feat} (10 targets, f32)"
        rows.append(row(g, name, ms, peer_name, peer_ms, None, f"max |dw| {diff:.1e}"))
    n = 4000
    x = rng.standard_normal(n)
    y = np.tanh(x) + 0.5 * rng.standard_normal(n)
    xs, ys = (jnp.asarray((v / v.std()).astype(np.float32)) for v in (x, y))
    mi = jax.jit(lambda a, b: esparse.mutual_information(a, b, k=3))

    def peer_mi():
        return mutual_info_regression(x[:, None], y, n_neighbors=3, random_state=0)[0]

    note = f"MI {float(mi(xs, ys)):.4f} vs {peer_mi():.4f} nats"
    ms, peer_ms = timed_pair(lambda: mi(xs, ys), peer_mi, 5)
    rows.append(row(g, f"KSG MI n={n}, k=3, 1-D", ms, "sklearn MI", peer_ms, None, note))
    return rows
