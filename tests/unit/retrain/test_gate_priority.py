"""The gate's priority question: both heads judged on the same held-out tickets, urgent tickets read as low per
customer; a head never dropped when the data could train it, never demanded when it could not."""

import numpy as np
import pytest

from retrain.ml.gate import Evidence, clustered_gain, priority_check, quality_gate
from retrain.ml.priority import priority_scores
from ticket_ab.settings import get_settings

N = 200
URGENT = 40


@pytest.fixture
def settings(tmp_path):
    return get_settings(home=tmp_path, training={"gate_priority_margin": 0.02, "gate_urgent_min_rows": 30,
                                                 "gate_urgent_low_margin": 0.02}, relabel={"min_holdout": 30})


@pytest.fixture
def truth():
    return np.array(["urgent"] * URGENT + ["low"] * 60 + ["medium"] * 60 + ["high"] * 40)


def _evidence(truth, candidate, champion, note="", trainable=False, customers=None) -> Evidence:
    topics = np.array(["a", "b"] * (N // 2))  # the topic gate passes: both versions answer every topic right
    return Evidence(topics, topics, topics, np.arange(N), priority_true=truth, priority_candidate=candidate,
                    priority_champion=champion, candidate_priority_note=note, candidate_priority_trainable=trainable,
                    priority_customers=customers)


def _urgent_as_low(truth, k):
    answers = truth.copy()
    answers[:k] = "low"
    return answers


def test_equal_heads_pass_and_the_reason_states_both_figures(settings, truth):
    result = quality_gate(_evidence(truth, truth, truth), settings)
    assert result.passed
    assert "priority macro-F1 1.0000 vs champion 1.0000 on 200 tickets (a point check, margin 0.0200)" in result.reason
    assert "urgent predicted low 0 vs champion 0 of 40 urgent tickets" in result.reason


def test_one_more_urgent_ticket_read_as_low_is_not_evidence_and_the_reason_states_the_bound(settings, truth):
    result = quality_gate(_evidence(truth, _urgent_as_low(truth, 3), _urgent_as_low(truth, 2)), settings)
    gain = clustered_gain(_urgent_as_low(truth, 3)[:URGENT] == "low", _urgent_as_low(truth, 2)[:URGENT] == "low",
                          np.arange(URGENT), settings.training.gate_confidence)
    assert result.passed and gain.lower <= 0.02 < gain.gain + 0.01
    assert (f"urgent predicted low 3 vs champion 2 of 40 urgent tickets (40 customers): share {gain.gain:+.4f}, "
            f"95% lower bound {gain.lower:+.4f} <= 0.0200") in result.reason
    assert result.details["priority"]["candidate"]["urgent_as_low_count"] == 3


def test_urgent_tickets_read_as_low_are_judged_per_customer(tmp_path, truth):
    settings = get_settings(home=tmp_path, training={"gate_priority_margin": 1.0, "gate_urgent_min_rows": 30,
                                                     "gate_urgent_low_margin": 0.02}, relabel={"min_holdout": 30})
    candidate, champion = _urgent_as_low(truth, 10), truth  # 10 of 40 urgent tickets newly read as low
    spread = np.array([f"c{i}" for i in range(N)])  # each ticket its own customer
    burst = spread.copy()
    burst[:10] = "c0"  # ... or the 10 misread tickets all from one customer
    failed = quality_gate(_evidence(truth, candidate, champion, customers=spread), settings)
    gain = clustered_gain(candidate[:URGENT] == "low", champion[:URGENT] == "low", spread[:URGENT], 0.95)
    assert not failed.passed and gain.lower > 0.02
    assert (f"priority FAILED: urgent predicted low 10 vs champion 0 of 40 urgent tickets (40 customers): share "
            f"{gain.gain:+.4f}, 95% lower bound {gain.lower:+.4f} > 0.0200: more urgent tickets read as low") \
        in failed.reason
    assert failed.details["priority"]["urgent_as_low_gain"]["lower"] == pytest.approx(gain.lower)
    one_customer = quality_gate(_evidence(truth, candidate, champion, customers=burst), settings)
    assert one_customer.passed and "(31 customers)" in one_customer.reason  # one customer's burst: no evidence


def test_fewer_urgent_tickets_read_as_low_is_welcome(settings, truth):
    assert quality_gate(_evidence(truth, _urgent_as_low(truth, 1), _urgent_as_low(truth, 4)), settings).passed


def test_a_priority_macro_f1_drop_beyond_the_margin_fails_and_within_it_passes(settings, truth):
    worse = truth.copy()
    worse[100:130] = "high"  # 30 medium tickets read as high: no urgent one misread
    mine, theirs = priority_scores(truth, worse), priority_scores(truth, truth)
    assert theirs.macro_f1 - mine.macro_f1 > 0.02
    failed = quality_gate(_evidence(truth, worse, truth), settings)
    assert not failed.passed and f"priority macro-F1 {mine.macro_f1:.4f} vs champion 1.0000" in failed.reason
    slightly = truth.copy()
    slightly[100:101] = "high"
    assert priority_scores(truth, slightly).macro_f1 > 1.0 - 0.02
    assert quality_gate(_evidence(truth, slightly, truth), settings).passed


def test_with_few_urgent_tickets_a_rise_is_reported_not_judged(tmp_path, truth):
    settings = get_settings(home=tmp_path, training={"gate_priority_margin": 0.1, "gate_urgent_min_rows": 30},
                            relabel={"min_holdout": 30})  # the macro-F1 drop of 2 misread tickets is let pass
    few = truth.copy()
    few[10:URGENT] = "high"  # 10 urgent tickets left, below gate_urgent_min_rows
    result = quality_gate(_evidence(few, _urgent_as_low(few, 2), few), settings)
    assert result.passed
    assert "urgent predicted low 2 vs champion 0 of 10 urgent tickets (reported only: fewer than 30)" in result.reason
    check = priority_check(_evidence(few, _urgent_as_low(few, 2), few), settings)
    assert check.failures == ()


def test_a_class_absent_from_the_held_out_tickets_costs_one_ticket_not_the_gate(settings):
    truth = np.array(["low"] * 70 + ["medium"] * 70 + ["high"] * 60)  # no urgent ticket held out
    stray = truth.copy()
    stray[0] = "urgent"  # one prediction of the absent class
    result = quality_gate(_evidence(truth, stray, truth), settings)
    assert result.passed, result.reason
    assert result.details["priority"]["candidate"]["macro_f1"] > 1.0 - 0.02


def test_too_few_held_out_priorities_cannot_be_judged(settings):
    truth = np.array(["urgent"] * 5 + ["low"] * 10)
    check = priority_check(_evidence(truth, np.array(["low"] * 15), truth), settings)
    assert check.failures == ()
    assert "priority cannot be judged: 15 held-out tickets with a priority < 30" in check.summary


def test_a_one_head_champion_only_gets_the_candidates_figures_reported(settings, truth):
    result = quality_gate(_evidence(truth, _urgent_as_low(truth, 10), None), settings)
    assert result.passed and "(reported: the champion has no priority head)" in result.reason
    assert result.details["priority"]["candidate"]["urgent_as_low_count"] == 10


def test_a_one_head_candidate_against_a_two_head_champion_fails_when_its_data_could_train_a_head(settings, truth):
    note = "the priority selection failed: no candidate finished within the time budget"
    result = quality_gate(_evidence(truth, None, truth, note=note, trainable=True), settings)
    assert not result.passed
    assert (f"the challenger has no priority head ({note}) although its training data could train one, and the "
            "champion answers priorities") in result.reason
    empty = np.array([], dtype=str)  # the lost head fails even without held-out priorities to compare on
    assert priority_check(_evidence(empty, None, empty, note=note, trainable=True), settings).failures


@pytest.mark.parametrize("held_out", [0, 200])
def test_a_one_head_candidate_whose_data_cannot_train_a_head_is_reported_not_failed(settings, truth, held_out):
    note = "each priority needs at least 3 tickets for 3-fold selection; too few: {'urgent': 1}"
    truth = truth[:held_out]
    result = quality_gate(_evidence(truth, None, truth, note=note, trainable=False), settings)
    assert result.passed, result.reason
    assert (f"priority cannot be judged: the challenger has no priority head ({note}) and its training data cannot "
            "train one") in result.reason
    assert result.details["priority"]["candidate_priority_trainable"] is False


def test_neither_head_nor_priority_evidence_leaves_the_gate_as_it_was(settings, truth):
    assert priority_check(_evidence(truth, None, None), settings) is None
    topics = np.array(["a", "b"] * (N // 2))
    plain = quality_gate(Evidence(topics, topics, topics, np.arange(N)), settings)
    assert plain.passed and "priority" not in plain.reason and plain.details["priority"] is None
