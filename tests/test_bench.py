"""Tests for the benchmark harness (not the timings themselves)."""

import json

import pytest

from experiments.bench import harness, results
from experiments.bench.__main__ import main


def test_timed_pair_reports_each_function_separately():
    calls = []
    fast, slow = harness.timed_pair(
        lambda: calls.append("a"), lambda: calls.append("b") or sum(range(200_000)), reps=3
    )
    # one warm-up each, then strictly alternating
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert 0 < fast < slow


def test_row_ratio_is_esparse_over_peer():
    r = harness.row("g", "n", 50.0, "numpy", 100.0)
    assert r["ratio"] == 0.5
    assert harness.row("g", "n", 50.0, None, None)["ratio"] is None


def test_write_json_merges_groups(tmp_path):
    path = tmp_path / "out" / "bench.json"
    results.write_json(path, {"kernels": {"rows": [1]}})
    results.write_json(path, {"seeds": {"rows": [2]}})
    assert json.loads(path.read_text())["groups"] == {
        "kernels": {"rows": [1]},
        "seeds": {"rows": [2]},
    }
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temp files left


def test_unknown_group_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["no-such-group"])
    assert "no-such-group" in capsys.readouterr().err
