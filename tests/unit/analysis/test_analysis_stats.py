"""The shared proportion statistics (`retrain.ml.stats`): each is the library's number (statsmodels, scipy)."""

import math

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from retrain.ml import stats


def test_wilson_interval_is_statsmodels_wilson():
    assert stats.wilson_interval(45, 100) == pytest.approx(proportion_confint(45, 100, alpha=0.05, method="wilson"))
    assert stats.wilson_interval(45, 100) == (pytest.approx(0.35615, abs=1e-5), pytest.approx(0.54755, abs=1e-5))
    assert stats.wilson_interval(7, 20, confidence=0.9) == pytest.approx(
        proportion_confint(7, 20, alpha=0.1, method="wilson"))


def test_wilson_interval_stays_inside_0_1_at_the_edges_and_is_nan_without_data():
    assert stats.wilson_interval(0, 10)[0] == pytest.approx(0.0) and stats.wilson_interval(0, 10)[0] >= 0.0
    assert stats.wilson_interval(10, 10)[1] == pytest.approx(1.0) and stats.wilson_interval(10, 10)[1] <= 1.0
    assert stats.wilson_interval(10, 10)[0] == pytest.approx(0.72247, abs=1e-5)
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))


def test_wilson_bounds_take_arrays_and_a_normal_quantile():
    hits, n = np.array([50, 45, 500]), np.array([50, 100, 500])
    expected = proportion_confint(hits, n, alpha=2 * 0.05, method="wilson")  # z = 1.645: one-sided 95%
    low, high = stats.wilson_bounds(hits, n, 1.6448536)
    assert low == pytest.approx(expected[0]) and high == pytest.approx(expected[1])


def test_two_proportion_test_is_statsmodels_pooled_z_and_wald_interval():
    result = stats.two_proportion_test(800, 1000, 880, 1000)
    z, p = proportions_ztest([880, 800], [1000, 1000])
    assert (result.diff, result.z, result.p_value) == (pytest.approx(0.08), pytest.approx(z), pytest.approx(p))
    assert (result.ci_low, result.ci_high) == pytest.approx(
        confint_proportions_2indep(880, 1000, 800, 1000, method="wald", compare="diff"))
    assert (result.z, result.p_value) == (pytest.approx(4.8795, abs=1e-4), pytest.approx(1.0635e-6, rel=1e-3))


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


def test_mcnemar_chi_square_with_continuity_correction_is_statsmodels():
    result = stats.mcnemar(121, 59)
    expected = sm_mcnemar([[0, 121], [59, 0]], exact=False, correction=True)
    assert (result.statistic, result.p_value) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))
    assert result.statistic == pytest.approx(20.6722, abs=1e-4)
    assert result.method == "chi-square with continuity correction"


def test_mcnemar_exact_binomial_for_few_discordant_pairs():
    result = stats.mcnemar(1, 6)
    assert result.p_value == pytest.approx(sm_mcnemar([[0, 1], [6, 0]], exact=True).pvalue)
    assert result.p_value == pytest.approx(0.125)
    assert result.method == "exact binomial"
    assert stats.mcnemar(0, 0).p_value == 1.0
    assert stats.mcnemar(3, 3).p_value == pytest.approx(1.0)
