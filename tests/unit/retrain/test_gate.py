import numpy as np
import pytest
import statsmodels.api as sm

from retrain.ml.gate import Evidence, clustered_gain, quality_gate, topic_regressions
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
