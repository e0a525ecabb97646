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
    assert stats.decide(passing, n_seeds=8) == stats.REPRODUCED
    assert stats.decide(passing, n_seeds=2) == stats.INCONCLUSIVE
    assert stats.decide([*passing, stats.ci_above("g", straddle)], 8) == stats.INCONCLUSIVE
    assert stats.decide([*passing, stats.at_most("x", 2.0, 1.0)], 8) == stats.NOT_REPRODUCED


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="values"):
        stats.mean_ci([])
    with pytest.raises(ValueError, match="values"):
        stats.mean_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="method"):
        stats.mean_ci([1.0, 2.0], method="normal")
    with pytest.raises(ValueError, match="checks"):
        stats.decide([], 8)
