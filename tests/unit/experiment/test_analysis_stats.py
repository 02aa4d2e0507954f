"""The statistics against textbook values (and sklearn/statsmodels-equivalent numbers, hard-coded)."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from analysis import stats


def test_wilson_interval_for_45_of_100():
    low, high = stats.wilson_interval(45, 100)
    assert low == pytest.approx(0.35615, abs=1e-5)
    assert high == pytest.approx(0.54755, abs=1e-5)


def test_wilson_interval_stays_inside_0_1_at_the_edges_and_is_nan_without_data():
    assert stats.wilson_interval(0, 10)[0] == pytest.approx(0.0) and stats.wilson_interval(0, 10)[0] >= 0.0
    assert stats.wilson_interval(10, 10)[1] == pytest.approx(1.0) and stats.wilson_interval(10, 10)[1] <= 1.0
    assert stats.wilson_interval(10, 10)[0] == pytest.approx(0.72247, abs=1e-5)
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))


def test_two_proportion_test_80_vs_88_percent_of_1000():
    result = stats.two_proportion_test(800, 1000, 880, 1000)
    assert result.diff == pytest.approx(0.08)
    assert result.z == pytest.approx(4.8795, abs=1e-4)
    assert result.p_value == pytest.approx(1.0635e-6, rel=1e-3)
    assert (result.ci_low, result.ci_high) == (pytest.approx(0.048058, abs=1e-6), pytest.approx(0.111942, abs=1e-6))


def test_two_proportion_test_without_variance_or_data():
    same = stats.two_proportion_test(10, 10, 20, 20)
    assert (same.diff, same.p_value) == (0.0, 1.0)
    empty = stats.two_proportion_test(0, 0, 5, 10)
    assert math.isnan(empty.p_value) and math.isnan(empty.diff)


def test_srm_flags_45_55_on_a_50_50_split_and_not_an_even_one():
    skewed = stats.srm_test([900, 1100], [0.5, 0.5])
    assert skewed.chi2 == pytest.approx(20.0)
    assert skewed.p_value == pytest.approx(7.744e-6, rel=1e-3)
    assert skewed.flagged
    even = stats.srm_test([1000, 1000], [0.5, 0.5])
    assert even.p_value == pytest.approx(1.0) and not even.flagged


def test_srm_rescales_expected_shares_and_uses_p_below_0_001():
    result = stats.srm_test([790, 210], [0.8, 0.2])
    assert result.expected == (800.0, 200.0)
    assert not result.flagged
    borderline = stats.srm_test([540, 460], [0.5, 0.5])  # p = 0.011: suspicious, not flagged
    assert 0.001 < borderline.p_value < 0.05 and not borderline.flagged


def test_mcnemar_chi_square_with_continuity_correction():
    result = stats.mcnemar(121, 59)
    assert result.statistic == pytest.approx(20.6722, abs=1e-4)
    assert result.p_value == pytest.approx(5.4501e-6, rel=1e-3)
    assert result.method == "chi-square with continuity correction"


def test_mcnemar_exact_binomial_for_few_discordant_pairs():
    result = stats.mcnemar(1, 6)
    assert result.p_value == pytest.approx(0.125)
    assert result.method == "exact binomial"
    assert stats.mcnemar(0, 0).p_value == 1.0
    assert stats.mcnemar(3, 3).p_value == pytest.approx(1.0)


def test_paired_difference_counts_only_discordant_pairs():
    diff, low, high = stats.paired_difference(only_a=20, only_b=60, n=1000)
    assert diff == pytest.approx(0.04)
    se = math.sqrt(80 - 40**2 / 1000) / 1000
    assert (low, high) == (pytest.approx(0.04 - 1.959964 * se), pytest.approx(0.04 + 1.959964 * se))


def test_sample_size_per_arm_for_80_vs_88_percent_is_329():
    assert stats.sample_size_per_arm(0.80, 0.88) == 329
    assert stats.sample_size_per_arm(0.80, 0.80) == math.inf
    assert stats.sample_size_per_arm(0.50, 0.60, power=0.9) > stats.sample_size_per_arm(0.50, 0.60)


def test_minimum_detectable_effect_inverts_the_sample_size():
    mde = stats.minimum_detectable_effect(0.80, 329)
    assert mde == pytest.approx(0.08, abs=5e-4)
    assert stats.minimum_detectable_effect(0.80, 4 * 329) < mde / 1.8
    assert math.isnan(stats.minimum_detectable_effect(0.80, 0))


def test_paired_sample_size_and_mde_are_consistent():
    n = stats.paired_sample_size(discordant=0.2, diff=0.05)
    assert n == 626
    assert stats.paired_mde(0.2, int(n)) == pytest.approx(0.05, abs=0.003)
    assert stats.paired_sample_size(0.2, 0.0) == math.inf


def test_macro_f1_matches_sklearn_and_its_bootstrap_interval_brackets_it():
    rng = np.random.default_rng(3)
    truth = rng.choice(list("abcde"), 1500)
    pred = np.where(rng.random(1500) < 0.75, truth, rng.choice(list("abcdef"), 1500))
    expected = f1_score(truth, pred, average="macro", zero_division=0)
    assert stats.macro_f1(truth.tolist(), pred.tolist()) == pytest.approx(expected)
    low, high = stats.macro_f1_interval(truth.tolist(), pred.tolist())
    assert low < expected < high and high - low < 0.08
    assert stats.macro_f1_interval(truth.tolist(), pred.tolist()) == (low, high)  # seeded
    assert math.isnan(stats.macro_f1([], []))
