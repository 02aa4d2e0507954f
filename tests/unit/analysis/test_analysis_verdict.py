"""Each branch of the decision rule, in the order the rule applies them."""

import math

from analysis.guardrails import BREACHED, NOT_APPLICABLE, OK, UNRESOLVED, Guardrail
from analysis.verdict import COLLECT, GUARDRAIL, KEEP, PROMOTE, Evidence, decide
from ticket_ab.settings import ABSettings

TH = ABSettings()


def guard(status: str, name: str = "p95 latency") -> Guardrail:
    return Guardrail(name, status, 5.0, 1.0, 9.0, 25.0, f"{name}: B - A = +5 ms, {status}")


def evidence(**changes) -> Evidence:
    base = {"n_a": 1000, "n_b": 1000, "diff": 0.08, "ci_low": 0.048, "ci_high": 0.112, "needed_more": 0.0,
            "guardrails": [guard(OK), guard(OK, "error rate"), guard(OK, "fallback rate")]}
    return Evidence(**{**base, **changes})


def test_a_gain_whose_lower_bound_clears_the_minimum_gain_promotes():
    verdict = decide(evidence(), TH)
    assert verdict.action == PROMOTE and verdict.text == "promote challenger"
    assert "+8.0 pts" in verdict.reason and "1000 and 1000 labelled" in verdict.reason
    assert "always-valid 90% customer-level interval" in verdict.reason


def test_a_significant_gain_smaller_than_the_minimum_gain_is_not_promoted():
    verdict = decide(evidence(diff=0.012, ci_low=0.004, ci_high=0.020, needed_more=8000.0), TH)
    assert verdict.action == COLLECT  # credibly positive, but not credibly worth a promotion
    assert verdict.more_per_arm == 4000


def test_sample_ratio_mismatch_blocks_even_a_clear_win():
    verdict = decide(evidence(srm_flagged=True, srm_p=1e-6), TH)
    assert verdict.action == KEEP
    assert "sample-ratio mismatch" in verdict.reason


def test_too_few_labels_keeps_collecting_up_to_the_minimum():
    verdict = decide(evidence(n_a=150, n_b=400, needed_more=60.0), TH)
    assert verdict.action == COLLECT
    assert verdict.more_per_arm == 50  # 200 minimum - 150 in the smaller arm


def test_too_few_labels_asks_for_what_the_test_needs_when_that_is_more():
    verdict = decide(evidence(n_a=150, n_b=150, needed_more=1000.0), TH)
    assert verdict.more_per_arm == 500


def test_a_breached_guardrail_has_its_own_verdict_naming_it_even_with_a_clear_win():
    verdict = decide(evidence(guardrails=[guard(BREACHED), guard(OK, "error rate")]), TH)
    assert verdict.action == GUARDRAIL and verdict.text == "guardrail breached"
    assert "keep champion" in verdict.reason and "p95 latency" in verdict.reason and "error rate" not in verdict.reason


def test_an_unresolved_guardrail_holds_a_promotion_back():
    verdict = decide(evidence(guardrails=[guard(UNRESOLVED, "fallback rate")]), TH)
    assert verdict.action == COLLECT
    assert "gain is established" in verdict.reason and "fallback rate" in verdict.reason


def test_a_guardrail_without_data_does_not_block():
    assert decide(evidence(guardrails=[guard(NOT_APPLICABLE)]), TH).action == PROMOTE


def test_worse_challenger_keeps_champion():
    verdict = decide(evidence(diff=-0.06, ci_low=-0.09, ci_high=-0.03), TH)
    assert verdict.action == KEEP
    assert "less accurate" in verdict.reason


def test_interval_below_the_minimum_gain_keeps_champion_as_no_meaningful_gain():
    verdict = decide(evidence(diff=0.001, ci_low=-0.004, ci_high=0.006), TH)
    assert verdict.action == KEEP
    assert "rules out a gain of 1.0 pts" in verdict.reason


def test_undecided_keeps_collecting_with_what_the_test_still_needs():
    verdict = decide(evidence(diff=0.03, ci_low=-0.01, ci_high=0.07, needed_more=1201.0), TH)
    assert verdict.action == COLLECT
    assert verdict.more_per_arm == 601 and "601 more labelled requests needed per arm" in verdict.text
    assert "still contains a gain of 1.0 pts" in verdict.reason


def test_no_difference_at_all_keeps_collecting_without_a_count():
    verdict = decide(evidence(diff=0.01, ci_low=-0.02, ci_high=0.04, needed_more=math.inf), TH)
    assert verdict.action == COLLECT and verdict.more_per_arm is None


def test_fixed_horizon_says_so_in_the_reason():
    verdict = decide(evidence(sequential=False), TH)
    assert "fixed-horizon" in verdict.reason
