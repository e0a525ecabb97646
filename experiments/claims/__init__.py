"""The claim registry: id -> module, in the order of ../shared/CLAIMS.md."""

from __future__ import annotations

import importlib

from experiments.core import Claim

CLAIM_MODULES = {
    "es-expansion": "es_expansion",
    "flyhash-search": "flyhash_search",
    "random-net": "random_net",
    "lottery-ticket": "lottery_ticket",
    "supermask": "supermask",
    "dropout": "dropout",
    "random-labels": "random_labels",
    "double-descent": "double_descent",
    "feature-repopulation": "feature_repopulation",
    "rf-single-neuron": "rf_single_neuron",
    "layer-mi": "layer_mi",
}


def claim_ids() -> list[str]:
    """Every registered claim id, in CLAIMS.md order."""
    return list(CLAIM_MODULES)


def get(claim_id: str) -> Claim:
    """The Claim of `claim_id`; ValueError naming it when unknown."""
    if claim_id not in CLAIM_MODULES:
        raise ValueError(f"claim must be one of {claim_ids()}, got {claim_id!r}")
    return importlib.import_module(f"experiments.claims.{CLAIM_MODULES[claim_id]}").CLAIM
