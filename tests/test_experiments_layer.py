"""The experiment layer: runner, skip-on-rerun, atomic results, report, CLI errors."""

import json
import subprocess
import sys
from dataclasses import dataclass

import jax
import numpy as np
import pytest

from esparse import stats
from experiments import runner
from experiments.core import Claim, Evaluation, errorbar, save_figure, subplots
from experiments.report import write_report


@dataclass(frozen=True)
class ToyConfig:
    seeds: int = 4
    shift: float = 1.0


def _toy_run(keys, config):
    draws = jax.vmap(lambda k: jax.random.normal(k, (3,)))(keys)
    return {"gain": draws.mean(axis=1) * 0.01 + config.shift}


def _toy_evaluate(metrics, config):
    ci = stats.mean_ci(metrics["gain"])
    return Evaluation(
        checks=[stats.ci_above("gain above 0", ci)],
        summary={"gain": ci.to_dict()},
        headline=f"gain {ci.mean:.3f}",
        sub_verdicts={"strict": [stats.at_least("gain >= 2", ci.mean, 2.0)]},
    )


def _toy_plot(metrics, config, path):
    fig, (ax,) = subplots()
    ax.plot(metrics["gain"])
    save_figure(fig, path)


def _toy_claim(shift=1.0):
    configs = {s: ToyConfig(shift=shift) for s in ("smoke", "quick", "full")}
    return Claim("toy", "MH", "a toy claim", "none", configs, _toy_run, _toy_evaluate, _toy_plot)


def test_seed_keys_are_prefix_stable():
    a, b = runner.seed_keys(3, 4), runner.seed_keys(3, 8)
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b[:4]))


def test_run_claim_writes_json_png_and_report(tmp_path):
    record = runner.run_claim(_toy_claim(), "smoke", out_dir=tmp_path)
    assert record["verdict"] == stats.REPRODUCED
    assert record["sub_verdicts"]["strict"]["verdict"] == stats.NOT_REPRODUCED
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert saved["seeds"] == 4 and len(saved["metrics"]["gain"]) == 4
    assert saved["environment"]["jax"] == jax.__version__
    assert (tmp_path / "toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))
    report = write_report(tmp_path, ["toy"]).read_text()
    assert "| `toy` | MH |" in report and "[toy.png](toy.png)" in report


def test_rerun_skips_same_config_and_redoes_changed_or_forced(tmp_path):
    claim = _toy_claim()
    runner.run_claim(claim, "smoke", out_dir=tmp_path)
    assert runner.run_claim(claim, "smoke", out_dir=tmp_path).get("skipped")
    assert not runner.run_claim(claim, "smoke", out_dir=tmp_path, force=True).get("skipped")
    assert not runner.run_claim(claim, "smoke", seeds=5, out_dir=tmp_path).get("skipped")
    failing = runner.run_claim(_toy_claim(shift=-1.0), "smoke", out_dir=tmp_path)
    assert failing["verdict"] == stats.NOT_REPRODUCED


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="scale"):
        _toy_claim().config("huge")


@pytest.mark.parametrize(
    "argv, message",
    [(["no-such-claim"], "unknown claim"), (["--scale", "huge"], "--scale")],
)
def test_cli_rejects_bad_arguments(argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments", *argv], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert message in proc.stderr


def test_errorbar_log_mode_is_geometric_and_stays_positive():
    """Losses spanning decades: the arithmetic interval crosses zero, the log one does not."""
    values = np.array([[1e-3, 1.0], [1e-1, 2.0], [1e-2, 4.0]])
    fig, (ax,) = subplots(1)
    errorbar(ax, [0, 1], values, "linear")
    errorbar(ax, [0, 1], values, "log", log=True)
    (linear_line, _, (linear_bars,)), (log_line, _, (log_bars,)) = ax.containers
    np.testing.assert_allclose(linear_line.get_ydata(), values.mean(axis=0))
    np.testing.assert_allclose(log_line.get_ydata(), np.exp(np.log(values).mean(axis=0)))
    assert min(seg[0, 1] for seg in linear_bars.get_segments()) < 0
    assert min(seg[0, 1] for seg in log_bars.get_segments()) > 0
