"""End-to-end negative control of feature-repopulation (CLAIMS.md, 2026-12-03): the claim's own
`run` and `evaluate`, judged by `runner.judge`, on a small config where the unmanipulated run is
reproduced, and with the data term removed from the learned arm (`control="no-data"`: noise and
L2 only), which makes the learned particles the noise-only control's, so (ii) and (iii) fail."""

from __future__ import annotations

import dataclasses

from esparse import stats
from experiments import claims
from experiments.claims import feature_repopulation
from experiments.runner import judge, seed_keys

# 4 seeds: two independent seed pairs for the distances
CONFIG = feature_repopulation.Config(seeds=4, widths=(64, 256), n_train=300, n_test=200, steps=1000)


def _judged(config) -> dict:
    claim = claims.get("feature-repopulation")
    metrics = claim.run(seed_keys(0, config.seeds), config)
    return judge(claim, "smoke", metrics, config)


def test_negative_control_no_data_term():
    plain = _judged(CONFIG)
    assert plain["verdict"] == stats.REPRODUCED, plain
    manipulated = _judged(dataclasses.replace(CONFIG, control="no-data"))
    assert manipulated["verdict"] == stats.NOT_REPRODUCED, manipulated
