"""Every registered claim runs end to end at smoke scale and writes valid JSON, PNG and report."""

import json

import pytest

from esparse import stats
from experiments import claims
from experiments.report import write_report
from experiments.runner import run_claim

VERDICTS = {stats.REPRODUCED, stats.NOT_REPRODUCED, stats.INCONCLUSIVE}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


@pytest.mark.parametrize("claim_id", claims.claim_ids())
def test_claim_runs_at_smoke_scale(claim_id, out_dir):
    claim = claims.get(claim_id)
    record = run_claim(claim, "smoke", out_dir=out_dir)
    assert record["verdict"] in VERDICTS
    saved = json.loads((out_dir / f"{claim_id}.json").read_text())
    assert saved["claim"] == claim_id and saved["scale"] == "smoke"
    assert saved["checks"] and all(
        c["outcome"] in {"pass", "fail", "inconclusive"} for c in saved["checks"]
    )
    for name, values in saved["metrics"].items():
        # per seed, or per pair of seeds for between-seed distances
        assert len(values) in (saved["seeds"], saved["seeds"] // 2), name
    assert (out_dir / f"{claim_id}.png").read_bytes()[:4] == b"\x89PNG"
    assert claim.config("full").seeds >= 32 and claim.config("quick").seeds >= 8


def test_report_lists_every_claim_run(out_dir):
    report = write_report(out_dir, claims.claim_ids()).read_text()
    for claim_id in claims.claim_ids():
        if (out_dir / f"{claim_id}.json").exists():
            assert f"| `{claim_id}` |" in report
