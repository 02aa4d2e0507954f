"""Each branch of the decision rule, in the order the rule applies them."""

import math

from analysis.verdict import COLLECT, KEEP, PROMOTE, Evidence, Thresholds, decide


def evidence(**changes) -> Evidence:
    base = {"n_a": 1000, "n_b": 1000, "diff": 0.08, "ci_low": 0.048, "ci_high": 0.112, "p_value": 1e-6,
            "needed_observed": 329.0, "needed_min_gain": 24_000.0, "srm_flagged": False}
    return Evidence(**{**base, **changes})


def test_significant_gain_with_enough_labels_promotes():
    verdict = decide(evidence())
    assert verdict.action == PROMOTE
    assert verdict.text == "promote challenger"
    assert "+8.0 pts" in verdict.reason and "1000 and 1000 labelled" in verdict.reason


def test_sample_ratio_mismatch_blocks_even_a_clear_win():
    verdict = decide(evidence(srm_flagged=True, srm_p=1e-6))
    assert verdict.action == KEEP
    assert "sample-ratio mismatch" in verdict.reason


def test_too_few_labels_keeps_collecting_up_to_the_minimum():
    verdict = decide(evidence(n_a=150, n_b=400, needed_observed=120.0))
    assert verdict.action == COLLECT
    assert verdict.more_per_arm == 50  # 200 minimum - 150 in the smaller arm
    assert verdict.text == "keep collecting (50 more labelled requests needed per arm)"


def test_too_few_labels_asks_for_the_size_the_observed_effect_needs_when_larger():
    verdict = decide(evidence(n_a=150, n_b=150, diff=0.03, needed_observed=2000.0))
    assert verdict.more_per_arm == 1850
    assert "about 2000 per arm" in verdict.reason


def test_significantly_worse_keeps_champion():
    verdict = decide(evidence(diff=-0.05, ci_low=-0.08, ci_high=-0.02, p_value=0.001))
    assert verdict.action == KEEP and "less accurate" in verdict.reason


def test_interval_excluding_a_meaningful_gain_keeps_champion():
    verdict = decide(evidence(diff=-0.004, ci_low=-0.02, ci_high=0.009, p_value=0.6))
    assert verdict.action == KEEP and "rules out a gain of 1.0 pts" in verdict.reason


def test_inconclusive_keeps_collecting_with_the_size_for_the_observed_effect():
    verdict = decide(evidence(n_a=500, n_b=520, diff=0.03, ci_low=-0.01, ci_high=0.07, p_value=0.15,
                              needed_observed=2100.0))
    assert verdict.action == COLLECT
    assert verdict.more_per_arm == 1600
    assert "detecting the observed difference with power 80% takes about 2100" in verdict.reason


def test_tiny_observed_difference_plans_for_the_minimum_gain():
    verdict = decide(evidence(n_a=500, n_b=500, diff=0.002, ci_low=-0.03, ci_high=0.034, p_value=0.9,
                              needed_observed=400_000.0, needed_min_gain=20_000.0))
    assert verdict.more_per_arm == 19_500
    assert "detecting a gain of 1.0 pts with power 80% takes about 20000" in verdict.reason


def test_no_difference_at_all_is_not_an_unbounded_request():
    verdict = decide(evidence(n_a=500, n_b=500, diff=0.0, ci_low=-0.03, ci_high=0.03, p_value=1.0,
                              needed_observed=math.inf, needed_min_gain=20_000.0))
    assert verdict.action == COLLECT and verdict.more_per_arm == 19_500


def test_thresholds_are_configurable():
    strict = Thresholds(alpha=0.001, min_labelled=50)
    assert decide(evidence(p_value=0.01), strict).action == COLLECT
    assert decide(evidence(n_a=60, n_b=60, p_value=1e-5), strict).action == PROMOTE
