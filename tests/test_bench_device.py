"""The one-shot device check runs on CPU, in CI-sized form, and writes its JSON."""

import json

from experiments.bench import device
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
