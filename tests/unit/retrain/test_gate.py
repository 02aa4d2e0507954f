from dataclasses import replace

import numpy as np
import pytest
import statsmodels.api as sm

from retrain.ml.gate import Evidence, clustered_gain, quality_gate, topic_regressions
from retrain.ml.held import held_topics, judge_held
from ticket_ab.settings import get_settings


@pytest.fixture
def settings(tmp_path):
    return get_settings(home=tmp_path, training={"gate_margin": 0.01, "gate_topic_margin": 0.1,
                                                 "gate_topic_min_rows": 10}, relabel={"min_holdout": 30})


def _evidence(truth, candidate, champion, customers, **trusted) -> Evidence:
    return Evidence(np.asarray(truth), np.asarray(candidate), None if champion is None else np.asarray(champion),
                    np.asarray(customers), **trusted)


def test_gain_interval_is_statsmodels_cluster_robust_ols_on_customers():
    rng = np.random.default_rng(0)
    customers = rng.integers(0, 40, 400)
    a, b = rng.random(400) < 0.8, rng.random(400) < 0.85
    gain = clustered_gain(b, a, customers, 0.95)
    expected = sm.OLS(b.astype(float) - a, np.ones((400, 1))).fit(cov_type="cluster", cov_kwds={"groups": customers})
    assert (gain.lower, gain.upper) == pytest.approx(tuple(expected.conf_int(alpha=0.1)[0]))
    assert gain.clusters == 40 and gain.gain == pytest.approx(b.mean() - a.mean())


def test_one_customer_sending_many_tickets_widens_the_interval():
    rng = np.random.default_rng(1)
    customer = np.arange(300) // 30  # ten customers, each one's tickets alike: right or wrong together
    a, b = (rng.random(10) < 0.8)[customer], (rng.random(10) < 0.8)[customer]
    alone = clustered_gain(b, a, np.arange(300), 0.95)
    grouped = clustered_gain(b, a, customer, 0.95)
    assert grouped.upper - grouped.lower > alone.upper - alone.lower


def test_gate_passes_without_a_champion(settings):
    assert quality_gate(_evidence(["a"] * 5, ["a"] * 5, None, range(5)), settings).passed


def test_gate_refuses_to_judge_on_too_little_untouched_gold(settings):
    result = quality_gate(_evidence(["a"] * 10, ["a"] * 10, ["b"] * 10, range(10)), settings)
    assert not result.passed and "too little untouched gold: 10 held-out tickets < 30" in result.reason


def test_gate_passes_an_equal_challenger_and_fails_one_whose_bound_is_below_the_margin(settings):
    truth = np.array(["a", "b"] * 100)
    equal = quality_gate(_evidence(truth, truth, truth, np.arange(200)), settings)
    assert equal.passed and "lower bound +0.0000 >= -0.0100" in equal.reason
    worse = truth.copy()
    worse[:20] = "c"
    failed = quality_gate(_evidence(truth, worse, truth, np.arange(200)), settings)
    assert not failed.passed and "< -0.0100" in failed.reason


def test_gate_fails_challenger_that_regresses_on_one_topic_and_names_it(settings):
    truth = np.array(["network"] * 50 + ["billing"] * 50)
    poisoned = truth.copy()
    poisoned[:25] = "billing"  # half the network tickets now go to billing
    result = quality_gate(_evidence(truth[:40], truth[:40], truth[:40], np.arange(40), trusted_true=truth,
                                    trusted_candidate=poisoned, trusted_champion=truth), settings)
    assert not result.passed
    assert "topic 'network' recall 0.500 vs champion 1.000 on 50 trusted tickets" in result.reason
    assert [r["topic"] for r in result.details["topic_regressions"]] == ["network"]


def test_topics_with_too_few_trusted_tickets_are_not_judged():
    regressions, recalls = topic_regressions(np.array(["a"] * 5 + ["b"] * 20), np.array(["a"] * 25),
                                             np.array(["b"] * 25), margin=0.1, min_rows=10)
    assert set(recalls) == {"b"} and [r.topic for r in regressions] == []


# ---- held topics: judged without labels on the window ------------------------------------------

def _window(n_network: int, candidate_network: int, *, confident: int = 40, other: int = 300):
    """Window answers: the champion calls `n_network` tickets network (`confident` of them sure), the
    candidate keeps `candidate_network` of those and sends the rest to email."""
    champion = np.array(["network"] * n_network + ["email"] * other)
    confidence = np.array([0.95] * confident + [0.4] * (n_network - confident) + [0.9] * other)
    candidate = champion.copy()
    candidate[candidate_network:n_network] = "email"  # the least confident network tickets are dropped first
    return champion, confidence, candidate


def test_held_topics_are_both_topics_of_each_pattern():
    assert held_topics(["network->billing: 13 labels (100%) ...; 171 rows", "email->access"]) == [
        "access", "billing", "email", "network"]
    assert held_topics([]) == []


def test_a_challenger_that_stops_giving_a_held_topic_fails_and_the_reason_names_it(settings):
    champion, confidence, candidate = _window(200, 60)
    truth = np.array(["a", "b"] * 50)
    evidence = _evidence(truth, truth, truth, np.arange(100), held_topics=("billing", "network"),
                         window_champion=champion, window_confidence=confidence, window_candidate=candidate)
    result = quality_gate(evidence, settings)
    assert not result.passed
    assert "held topic 'network' abandoned: the challenger gives it to 60 window tickets, the champion to 200 " \
           "(0.30 < 0.50)" in result.reason
    checks = {c["topic"]: c for c in result.details["held_topics"]}
    assert checks["network"]["failures"] and not checks["billing"]["failures"]  # billing: never given, not judged
    assert checks["network"]["agreement"] == 1.0  # the confident tickets are still network: only the share fails
    kept = quality_gate(replace(evidence, window_candidate=_window(200, 150)[2]), settings)
    assert kept.passed and "held topic" not in kept.reason


def test_disagreeing_where_the_champion_is_sure_fails_a_held_topic_even_when_the_share_holds():
    champion, confidence, candidate = _window(200, 200)
    candidate = np.where((champion == "network") & (confidence > 0.9), "billing", candidate)  # the sure ones moved
    (check,) = judge_held(["network"], champion, confidence, candidate, share=0.5, agreement=0.9, sure=0.8,
                          min_rows=15)
    assert check.abandoned and check.share >= 0.5
    assert "of the 40 window tickets the champion gives it with confidence >= 0.80, the challenger agrees on 0.00" \
           in str(check)


def test_a_held_topic_the_champion_rarely_gives_is_not_judged_and_without_held_topics_nothing_is():
    champion, confidence, candidate = _window(10, 0, confident=5)
    (check,) = judge_held(["network"], champion, confidence, candidate, share=0.5, agreement=0.9, sure=0.8,
                          min_rows=15)
    assert not check.abandoned and check.share is None and check.agreement is None
    assert judge_held([], champion, confidence, candidate, share=0.5, agreement=0.9, sure=0.8, min_rows=15) == []
