"""The one-shot device check runs on CPU, in CI-sized form, and writes its JSON."""

import json

import pytest

from experiments import claims
from experiments.bench import device, fullclaims
from experiments.bench.__main__ import main

TINY = {
    "matmul": 256,
    "kwta": (64, 512, 26),
    "es": (64, 40, 512, 26),
    "seed_counts": (1, 2),
    "seed_steps": 10,
    "scale": "smoke",
    "budget_s": 120.0,
}


def test_device_check_writes_its_json(tmp_path, monkeypatch):
    monkeypatch.setitem(device.SIZES, "small", TINY)
    out = tmp_path / "device.json"
    assert main(["device", "--small", "--claims", "double-descent", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["size"] == "small" and record["device"]["backend"] == "cpu"
    assert record["matmul"]["highest"]["tflops"] > 0
    kwta = record["kwta"]
    assert kwta["identical"] and kwta["auto is"] == "search"
    assert all(kwta[f"{m} ms"] > 0 for m in ("auto", "search", "top_k"))
    assert record["expand_and_sparsify"]["auto / matmul"] > 0
    assert [r["name"] for r in record["seeds"]][:2] == [
        "train 1 seeds, compile included",
        "train 1 seeds, compile excluded",
    ]
    (claim,) = record["claims"]
    assert claim["claim"] == "double-descent" and claim["scale"] == "smoke"
    assert claim["verdict"] in {"reproduced", "not reproduced", "inconclusive"}
    assert claim["cpu_quick_verdict"] == "reproduced"
    assert set(device.CPU_QUICK) >= {"es-expansion", "layer-mi", "dropout"}


def test_full_claims_dry_run_at_smoke_scale(tmp_path, capsys):
    """The prepared device run (--full-claims), dry-run on the CPU: each claim in its own
    process at smoke scale, its JSON and a REPORT.md row under --full-out, one table (the
    check's sections are tested above; --no-check skips them here)."""
    out, full = tmp_path / "device.json", tmp_path / "full"
    argv = ["device", "--small", "--no-check", "--claims", "none", "--out", str(out)]
    argv += ["--full-claims", "flyhash-search", "--full-scale", "smoke"]
    assert main([*argv, "--full-seeds", "3", "--full-out", str(full)]) == 0
    rows = json.loads(out.read_text())["full_claims"]["rows"]
    (ran,) = rows
    assert ran["claim"] == "flyhash-search"
    assert ran["seeds"] == 3 and ran["seconds"] > 0 and ran["gpu_peak_gb"] is None
    assert ran["verdict"] in {"reproduced", "not reproduced", "inconclusive"}
    record = json.loads((full / "flyhash-search.json").read_text())
    assert record["scale"] == "smoke" and record["seeds"] == 3
    assert "| `flyhash-search` |" in (full / "REPORT.md").read_text()
    printed = capsys.readouterr().out
    assert "claim" in printed and "GPU peak GB" in printed
    assert any(
        line.startswith("flyhash-search") and line.rstrip().endswith(" -")
        for line in printed.splitlines()
    )
    assert set(fullclaims.PREPARED) <= set(claims.claim_ids())
    with pytest.raises(SystemExit):  # refused before any device time is spent
        main(["device", "--full-claims", "flyhash-search,no-such-claim", "--out", str(out)])
    assert "no-such-claim" in capsys.readouterr().err
