import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from esparse import stats


def test_t_interval_matches_scipy():
    values = np.array([0.61, 0.64, 0.58, 0.66, 0.63, 0.60, 0.65, 0.62])
    ci = stats.mean_ci(values)
    low, high = scipy_stats.t.interval(
        0.95, len(values) - 1, loc=values.mean(), scale=scipy_stats.sem(values)
    )
    assert ci.mean == pytest.approx(values.mean())
    assert (ci.low, ci.high) == pytest.approx((low, high))
    assert ci.n == 8


def test_bootstrap_interval_covers_mean_and_is_close_to_t():
    values = np.random.default_rng(0).normal(1.0, 0.5, size=200)
    t_ci, boot_ci = stats.mean_ci(values), stats.mean_ci(values, method="bootstrap")
    assert boot_ci.low < values.mean() < boot_ci.high
    assert boot_ci.low == pytest.approx(t_ci.low, abs=0.02)
    assert boot_ci.high == pytest.approx(t_ci.high, abs=0.02)


def test_paired_interval_is_interval_of_differences():
    a = np.array([0.7, 0.8, 0.75, 0.9])
    b = np.array([0.6, 0.7, 0.70, 0.85])
    assert stats.paired_ci(a, b) == stats.mean_ci(a - b)
    with pytest.raises(ValueError, match="a and b"):
        stats.paired_ci(a, b[:3])


@settings(max_examples=30, deadline=None)
@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@given(st.lists(st.integers(-5, 5), min_size=3, max_size=12), st.randoms())
def test_spearman_matches_scipy_with_ties(xs, rnd):
    ys = [rnd.randint(-3, 3) for _ in xs]
    expected = scipy_stats.spearmanr(xs, ys).statistic
    got = stats.spearman(xs, ys)
    if np.isnan(expected):
        assert got == 0.0
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_loglog_slope_of_power_law():
    m = np.array([64, 128, 256, 512, 1024])
    assert stats.loglog_slope(m, 3.0 * m**-0.5) == pytest.approx(-0.5)


def test_ci_checks_and_decide_cover_all_three_verdicts():
    above = stats.mean_ci([0.10, 0.12, 0.11, 0.13, 0.09])
    straddle = stats.mean_ci([-0.1, 0.2, 0.05, -0.05, 0.1])
    below = stats.mean_ci([-0.10, -0.12, -0.11, -0.13, -0.09])
    assert stats.ci_above("gain", above).outcome == "pass"
    assert stats.ci_above("gain", straddle).outcome == "inconclusive"
    assert stats.ci_above("gain", below).outcome == "fail"
    assert stats.ci_below("loss", below).outcome == "pass"
    passing = [stats.ci_above("gain", above), stats.at_least("rho", 0.95, 0.9)]
    assert stats.decide(passing, n_seeds=8).verdict == stats.REPRODUCED
    assert stats.decide([*passing, stats.ci_above("g", straddle)], 8).verdict == (
        stats.INCONCLUSIVE
    )
    failed = stats.decide([*passing, stats.at_most("x", 2.0, 1.0)], 8)
    assert failed.verdict == stats.NOT_REPRODUCED
    assert failed.reasons == ("x: 2 > 1",)


def test_fewer_seeds_than_the_scale_asks_is_preliminary_not_a_different_verdict():
    passing = [stats.ci_above("gain", stats.mean_ci([0.10, 0.12, 0.11, 0.13, 0.09]))]
    small = stats.decide(passing, n_seeds=4, min_seeds=8)
    assert small.verdict == stats.REPRODUCED and small.preliminary
    assert small.label == "reproduced, preliminary (4 seeds)"
    assert not stats.decide(passing, n_seeds=8, min_seeds=8).preliminary


def test_an_invalid_arm_turns_a_fail_on_it_inconclusive_but_not_a_fail_elsewhere():
    below = stats.mean_ci([-0.10, -0.12, -0.11, -0.13, -0.09])
    fail_a = stats.ci_above("gain on a", below).on("a")
    fail_b = stats.ci_above("gain on b", below).on("b")
    bad_a = stats.validity("a: converged", False, "60% under-trained", arms=("a",))
    good_b = stats.validity("b: converged", True, "0% under-trained", arms=("b",))
    assert stats.decide([fail_a, bad_a, good_b], 8).verdict == stats.INCONCLUSIVE
    assert "not decisively" in stats.decide([fail_a, bad_a], 8).reasons[0]
    assert stats.decide([fail_b, bad_a, good_b], 8).verdict == stats.NOT_REPRODUCED
    # a check on every arm (arms=()) is blocked by any invalid arm, and a validity check on
    # every arm (the lambda edge) blocks every fail
    assert stats.decide([stats.ci_above("all", below), bad_a], 8).verdict == stats.INCONCLUSIVE
    edge = stats.at_most_or_inconclusive("lambda at edge", 0.3, 0.1)
    assert edge.is_validity
    assert stats.decide([fail_b, edge], 8).verdict == stats.INCONCLUSIVE
    assert stats.decide([fail_b, stats.at_most_or_inconclusive("e", 0.0, 0.1)], 8).verdict == (
        stats.NOT_REPRODUCED
    )


def test_rises_with_from_paired_intervals():
    rng = np.random.default_rng(0)
    seeds, grid = 8, [1, 2, 5, 10]
    noise = 0.005 * rng.standard_normal((seeds, 4))
    rising = np.array([0.30, 0.35, 0.40, 0.45]) + noise
    assert stats.rises_with("acc", grid, rising).outcome == "pass"
    # rho of the means is 0.8 here, yet every paired step is decided: not a rank statistic
    dip = np.array([0.30, 0.40, 0.38, 0.45]) + noise
    check = stats.rises_with("acc", grid, dip)
    assert check.outcome == "fail" and "2->5" in check.detail
    falling = np.array([0.45, 0.44, 0.43, 0.40]) + noise
    assert stats.rises_with("acc", grid, falling).outcome == "fail"
    # a rise within the seed spread (quick runs' ~2-point CIs): neither decided
    spread = np.array([0.40, 0.405, 0.41, 0.41]) + 0.03 * rng.standard_normal((seeds, 4))
    assert stats.rises_with("acc", grid, spread).outcome == "inconclusive"
    with pytest.raises(ValueError, match="values"):
        stats.rises_with("acc", grid, rising[:, :3])


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="values"):
        stats.mean_ci([])
    with pytest.raises(ValueError, match="values"):
        stats.mean_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="method"):
        stats.mean_ci([1.0, 2.0], method="normal")
    with pytest.raises(ValueError, match="checks"):
        stats.decide([], 8)
