"""Supermasks: which edges of a frozen random network to keep, learned through scores.

Each layer keeps the k edges of largest |score|; the scores train through a straight-through
estimator while the weights stay at their random initialisation (`esparse.nn.supermask_mlp`
builds such a network; train only its scores with `esparse.optim.train_only`).

References: Zhou et al. 2019 (supermasks of untrained networks); Ramanujan et al. 2020
(edge-popup).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from esparse import _checks
from esparse.masks import top_k_mask

__all__ = ["edge_popup_mask"]


def edge_popup_mask(scores: jax.Array, k: int | jax.Array) -> jax.Array:
    """Edge-popup selection (Ramanujan et al. 2020): the k edges of largest |score| in a layer.

    scores: any shape, float; k: int kept edges in [1, scores.size] (may be traced; a Python
    int out of range is a ValueError). Forward: a float 0/1 mask with exactly k ones at the
    largest |scores| (ties by flat index), as the paper's `GetSubnet` applied to
    `scores.abs()`. Backward: straight-through through |scores|, d mask / d scores =
    sign(scores), so a weight w gets the score gradient sign(s) * dL/d(w_eff) * w.
    """
    _checks.count_in_range("k", k, 1, int(np.size(scores)))
    return _edge_popup(scores, k)


@jax.jit
def _edge_popup(scores, k):
    magnitude = jnp.abs(scores)
    hard = top_k_mask(magnitude, k).astype(scores.dtype)
    return hard + (magnitude - lax.stop_gradient(magnitude))
