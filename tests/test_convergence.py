"""The under-trained rule, the calibration's stopping rule, and the calibrated budget being read
(CLAIMS.md, 2026-12-03: converged budgets)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from esparse import convergence, stats
from experiments import calibrate, claims
from experiments.core import Claim, Training, convergence_checks
from experiments.runner import judge

STEPS = np.arange(1, 21) * 50  # 20 logs over T = 1000 steps


def _falling(rate: float, seeds: int = 8) -> np.ndarray:
    """Objective curves exp(-rate t / T): over the last 20% they fall by 1 - exp(-0.2 rate)."""
    return np.tile(np.exp(-rate * STEPS / STEPS[-1]), (seeds, 1))


def test_a_still_falling_objective_is_under_trained_and_a_flat_one_is_not():
    assert convergence.under_trained(STEPS, _falling(1.0)).all()  # 18% fall over the tail
    flat = 0.3 + 0.7 * np.exp(-30 * STEPS / STEPS[-1])  # a plateau long before the end
    assert not convergence.under_trained(STEPS, np.tile(flat, (8, 1))).any()
    # the threshold is 2% relative: a 1.9% fall is trained, a 2.1% fall is not
    just_under = 1 - 0.019 * np.clip((STEPS - 800) / 200, 0, 1)
    just_over = 1 - 0.021 * np.clip((STEPS - 800) / 200, 0, 1)
    assert not convergence.under_trained(STEPS, just_under[None]).any()
    assert convergence.under_trained(STEPS, just_over[None]).all()


def test_rising_train_accuracy_or_a_diverged_run_is_under_trained_and_the_floor_counts():
    flat = np.ones((2, 20))
    rising = np.tile(np.clip((STEPS - 700) / 300 * 0.05 + 0.9, 0.9, 1.0), (2, 1))
    assert convergence.under_trained(STEPS, flat, rising).all()  # +3 points in the tail
    assert not convergence.under_trained(STEPS, flat, np.full((2, 20), 0.9)).any()
    diverged = flat.copy()
    diverged[0, -1] = np.nan
    assert convergence.under_trained(STEPS, diverged).tolist() == [True, False]
    # a run that reached the claim's target (here 1e-4) is trained even if still falling
    tiny = 1e-5 * _falling(5.0, seeds=1)
    assert convergence.under_trained(STEPS, tiny).all()
    assert not convergence.under_trained(STEPS, tiny, floor=1e-4).any()


def test_the_logs_must_cover_the_tail():
    with pytest.raises(ValueError, match="last 20%"):
        convergence.under_trained([900, 1000], [[1.0, 0.5]])
    with pytest.raises(ValueError, match="increase"):
        convergence.under_trained([100, 50], [[1.0, 0.5]])


def _curves(arm: str, curve: np.ndarray) -> dict:
    return {f"curve/{arm}/steps": np.tile(STEPS, (len(curve), 1)), f"curve/{arm}/objective": curve}


def test_a_fail_on_an_under_trained_arm_is_inconclusive_and_on_a_converged_arm_decisive():
    flat = np.tile(0.3 + 0.7 * np.exp(-30 * STEPS / STEPS[-1]), (8, 1))
    still = _falling(1.0)
    below = stats.mean_ci([-0.10, -0.12, -0.11, -0.13, -0.09, -0.1, -0.11, -0.12])
    fail_on_w = stats.ci_above("accuracy at w=1024", below).on("w=1024")

    for curve, verdict in ((still, stats.INCONCLUSIVE), (flat, stats.NOT_REPRODUCED)):
        fractions, guards = convergence_checks(_curves("w=1024", curve))
        decision = stats.decide([fail_on_w, *guards], 8)
        assert decision.verdict == verdict, (fractions, decision)
    # under-training only takes the decisiveness from fails: a pass on that arm stands
    above = stats.ci_above("accuracy at w=1024", stats.mean_ci([0.1, 0.12, 0.11, 0.13])).on(
        "w=1024"
    )
    _, guards = convergence_checks(_curves("w=1024", still))
    assert stats.decide([above, *guards], 8).verdict == stats.REPRODUCED
    # 2 of 8 runs under-trained (25%) is still decisive; 3 of 8 is not
    for n_still, verdict in ((2, stats.NOT_REPRODUCED), (3, stats.INCONCLUSIVE)):
        mixed = np.concatenate([still[:n_still], flat[n_still:]])
        _, guards = convergence_checks(_curves("w=1024", mixed))
        assert stats.decide([fail_on_w, *guards], 8).verdict == verdict


def _step(budget, under, acc, loss):
    return convergence.BudgetStep(
        budget,
        {"arm": under},
        {"acc": (np.array(acc), "accuracy"), "loss": (np.array(loss), "loss")},
    )


def test_calibration_stops_at_the_first_budget_that_settles_against_its_double():
    t = _step(100, 0.0, [0.60, 0.62], [0.50, 0.52])
    assert convergence.budget_settles(t, _step(200, 0.0, [0.615, 0.62], [0.47, 0.49])) == (True, [])
    moved_acc = convergence.budget_settles(t, _step(200, 0.0, [0.64, 0.63], [0.5, 0.52]))
    assert not moved_acc[0] and "acc moves" in moved_acc[1][0]
    moved_loss = convergence.budget_settles(t, _step(200, 0.0, [0.61, 0.62], [0.40, 0.42]))
    assert not moved_loss[0] and "loss moves" in moved_loss[1][0]
    under = convergence.budget_settles(_step(100, 0.5, [0.6], [0.5]), _step(200, 0, [0.6], [0.5]))
    assert not under[0] and "under-trained" in under[1][0]
    # a loss below the claim's target at both budgets has settled, however much it moves
    tiny = convergence.budget_settles(
        _step(100, 0.0, [0.6], [1e-6]), _step(200, 0.0, [0.6], [1e-9]), loss_target=1e-4
    )
    assert tiny == (True, [])


def _toy_claim(tmp_path, monkeypatch) -> Claim:
    """A claim whose 'training' converges at 400 steps: its curve falls like exp(-t/50)."""

    @dataclasses.dataclass(frozen=True)
    class Config:
        seeds: int
        steps: int = 100

    def run(keys, config):
        n = len(keys)
        steps = np.linspace(config.steps / 20, config.steps, 20)
        curve = np.tile(0.1 + np.exp(-steps / 50), (n, 1))
        return {
            "loss": curve[:, -1],
            "curve/net/steps": np.tile(steps, (n, 1)),
            "curve/net/objective": curve,
        }

    def evaluate(metrics, config):
        from experiments.core import Evaluation

        ci = stats.mean_ci(metrics["loss"])
        return Evaluation([stats.ci_below("loss", ci, 0.2).on("net")], {}, "toy")

    monkeypatch.setattr("experiments.core.CALIBRATION_DIR", tmp_path)
    return Claim(
        id="toy",
        paper="MH",
        statement="",
        anchor="",
        configs={"quick": Config(seeds=8)},
        run=run,
        evaluate=evaluate,
        plot=lambda *a: None,
        training=Training("steps", lambda m, c: {"loss": (m["loss"], "loss")}),
    )


def test_calibrate_writes_a_record_the_claims_config_then_reads(tmp_path, monkeypatch):
    claim = _toy_claim(tmp_path, monkeypatch)
    assert claim.config("quick").steps == 100 and not claim.budget("quick")["calibrated"]
    lines = []
    record = calibrate.calibrate(claim, "quick", seeds=2, progress=lines.append)
    # 100 and 200 still fall > 2% over their last 20%; 400 does not, and 800 moves it 0.3%
    assert [t["budget"] for t in record["tried"]] == [100, 200, 400, 800]
    assert record["budget"] == 400 and record["converged"]
    assert record["base_seed"] == 1000003 and len(lines) >= 4
    on_disk = json.loads((tmp_path / "toy-quick.json").read_text())
    assert on_disk["budget"] == 400
    assert claim.config("quick").steps == 400
    budget = claim.budget("quick")
    assert budget["calibrated"] and budget["source"].endswith("toy-quick.json")
    # the verdict's record carries the curves' under-trained fractions
    judged = judge(
        claim, "quick", claim.run(range(8), claim.config("quick")), claim.config("quick")
    )
    assert judged["under_trained"] == {"net": 0.0} and judged["verdict"] == stats.REPRODUCED


def test_a_trained_claim_without_curves_is_refused(tmp_path, monkeypatch):
    claim = _toy_claim(tmp_path, monkeypatch)
    bare = dataclasses.replace(claim, run=lambda k, c: {"loss": np.full(len(k), 0.15)})
    with pytest.raises(ValueError, match="no training curves"):
        judge(bare, "quick", bare.run(range(8), None), claim.config("quick"))


def test_calibrate_plan_and_cli_refusals(capsys):
    assert calibrate.main(["supermask", "--scale", "full", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "supermask (full)" in out and "1000003" in out
    with pytest.raises(SystemExit):
        calibrate.main(["es-expansion"])  # not trained: nothing to calibrate
    assert "supermask" in calibrate.trained_claims()
    assert "flyhash-search" not in calibrate.trained_claims()
    for cid in calibrate.trained_claims():
        assert claims.get(cid).training is not None


def test_a_scale_without_the_trained_arm_has_no_budget_to_calibrate():
    """random-net's quick scale leaves its trained MLP out (mlp_steps = 0): its budget says so,
    calibrate skips it there and refuses it by name, and the full scale still calibrates it."""
    claim = claims.get("random-net")
    budget = claim.budget("quick")
    assert budget["value"] == 0 and not budget["calibrated"]
    assert "no trained arm" in budget["source"]
    assert "random-net" not in calibrate.trained_claims("quick")
    assert "random-net" in calibrate.trained_claims("full")
    with pytest.raises(ValueError, match="trains nothing at quick scale"):
        calibrate.budgets(claim, "quick")
    with pytest.raises(SystemExit):
        calibrate.main(["random-net", "--scale", "quick", "--plan"])
