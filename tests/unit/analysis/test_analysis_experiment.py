"""The analysis on synthetic router logs with a known truth (see conftest.py for how they are made)."""

import pandas as pd
import pytest
from experiment_logs import LogSpec, Phase
from logfiles import append_lines, append_rows

from analysis.experiment import AnalysisError, analyse
from analysis.guardrails import BREACHED
from analysis.verdict import COLLECT, GUARDRAIL, KEEP, PROMOTE
from retrain.ml import stats
from ticket_ab.logstore import REQUESTS, shard_files
from ticket_ab.requestlog import FEEDBACK_COLUMNS, read_feedback, read_requests
from ticket_ab.settings import ABSettings

FAST = ABSettings(resamples=50)  # bootstrap intervals are not what these tests check


def run(logs, **kwargs):
    requests, feedback = read_requests(logs), read_feedback(logs)
    kwargs.setdefault("thresholds", FAST)
    return analyse(requests.rows, feedback.rows, malformed_requests=requests.malformed,
                   malformed_feedback=feedback.malformed, **kwargs).summary


def test_a_challenger_eight_points_better_is_promoted(ab_logs):
    s = run(ab_logs(acc_a=0.80, acc_b=0.88))
    assert s["verdict"]["action"] == PROMOTE
    c = s["comparison"]
    assert c["kind"] == "independent" and c["sequential"] and "customers" in c["interval"]
    assert 0.01 <= c["ci_low"] < 0.08 < c["ci_high"]
    assert c["evidence"]["likelihood_ratio"] >= 20
    # the arms' accuracies are request-weighted; the verdict's estimand caps each customer's labels
    assert s["arms"]["B"]["accuracy"] - s["arms"]["A"]["accuracy"] == pytest.approx(c["adjustment"]["uncapped_diff"])
    assert c["estimand"]["capped_customers"] > 0 and "customer-capped" in c["test"] and c["strata"] == 1
    assert not s["srm"]["flagged"]
    assert s["arms"]["A"]["versions"] == ["3"] and s["arms"]["B"]["versions"] == ["4"]


def test_no_effect_is_not_promoted(ab_logs):
    s = run(ab_logs(acc_a=0.85, acc_b=0.85, seed=1))
    assert s["verdict"]["action"] != PROMOTE
    assert s["comparison"]["ci_low"] < 0.01 < s["comparison"]["ci_high"]


def test_a_large_fixed_horizon_sample_without_effect_keeps_the_champion(ab_logs):
    s = run(ab_logs(LogSpec(phases=[Phase(10_000)], acc_a=0.85, acc_b=0.85, feedback_rate=1.0, customers=1000,
                            step_s=0.2, seed=2)), sequential=False, thresholds=ABSettings(resamples=50, min_gain=0.02))
    assert s["verdict"]["action"] == KEEP
    assert s["comparison"]["ci_high"] < 0.02
    assert "rules out a gain of 2.0 pts" in s["verdict"]["reason"]


def test_a_45_55_customer_imbalance_on_a_50_50_split_is_flagged(ab_logs):
    s = run(ab_logs(LogSpec(phases=[Phase(6000, split_b=0.5, b_customer_share=0.55)], customers=3000,
                            acc_a=0.80, acc_b=0.88)))
    assert s["srm"]["flagged"] and s["srm"]["p_value"] < 0.001
    assert s["srm"]["observed_share_b"] == pytest.approx(0.55, abs=0.02)
    assert s["verdict"]["action"] == KEEP  # even a clear win is not trusted
    assert "sample-ratio mismatch" in s["verdict"]["reason"]


def test_srm_counts_customers_not_requests(ab_logs):
    """A few busy customers make request shares lumpy; the assignment unit is the customer."""
    s = run(ab_logs(LogSpec(phases=[Phase(4000)], customers=60)))
    request_share = s["arms"]["B"]["requests"] / s["data"]["requests_analysed"]
    assert abs(request_share - 0.5) > 0.05  # lumpy by requests...
    assert s["srm"]["observed"] == {"A": 30, "B": 30} and not s["srm"]["flagged"]  # ...even by customers


def test_shadow_mode_compares_the_same_tickets_paired_by_customer(ab_logs):
    s = run(ab_logs(LogSpec(phases=[Phase(3000, mode="shadow")], acc_a=0.80, acc_b=0.88)))
    c = s["comparison"]
    assert c["kind"] == "paired" and c["test"].startswith("paired difference, customer-clustered")
    m = c["mcnemar"]
    assert m["pairs"] == s["arms"]["A"]["labelled"] == s["arms"]["B"]["labelled"]
    assert m["only_b_right"] > m["only_a_right"] and m["p_value"] < 0.001
    assert c["adjustment"]["uncapped_diff"] == pytest.approx((m["only_b_right"] - m["only_a_right"]) / m["pairs"])
    assert c["estimand"]["capped_customers"] > 0 and c["diff"] != c["adjustment"]["uncapped_diff"]  # capped too
    assert not s["srm"]["applicable"]
    assert s["verdict"]["action"] == PROMOTE


def test_ramp_steps_of_one_experiment_are_pooled_as_strata_and_said(ab_logs):
    s = run(ab_logs(LogSpec(phases=[Phase(1000, split_b=0.2), Phase(3000, split_b=0.5)])))
    periods = s["config"]["periods"]
    assert s["config"]["changed"] and [p["split_b"] for p in periods] == [0.2, 0.5]
    assert [p["requests"] for p in periods] == [1000, 3000]
    assert s["data"]["requests_analysed"] == 4000 - s["crossover"]["requests"]
    assert s["srm"]["expected_share_b"] == 0.5 and s["step"]["split_b"] == 0.5
    assert periods[0]["srm"]["expected_share_b"] == 0.2 and not periods[0]["srm"]["flagged"]
    assert any("2 ramp steps pooled as strata" in n for n in s["notes"])
    labelled_b = s["step"]["labelled_customers"]["B"]
    assert 0 < labelled_b <= s["arms"]["B"]["labelled_customers"]


def test_traffic_before_the_challenger_existed_is_not_part_of_its_test(ab_logs):
    """The demo's story: split 0.5 from the start, but the challenger only arrives after a while."""
    logs = ab_logs(LogSpec(phases=[Phase(1500, challenger=False), Phase(3000)], acc_a=0.80, acc_b=0.88))
    s = run(logs)
    periods = s["config"]["periods"]
    assert [(p["challenger"], p["requests"]) for p in periods] == [("", 1500), ("4", 3000)]
    assert s["data"]["requests_analysed"] == 3000
    assert not s["srm"]["flagged"]  # customers who were all A before are not counted against the split
    assert s["verdict"]["action"] == PROMOTE
    assert s["data"]["labelled_analysed"] < s["data"]["labelled_in_window"]


def test_after_a_promotion_the_finished_test_is_still_the_one_analysed(ab_logs):
    logs = ab_logs(LogSpec(phases=[Phase(3000), Phase(500, challenger=False, version_a="4")], acc_a=0.80, acc_b=0.88))
    s = run(logs)
    assert s["config"]["current"] == {"mode": "split", "split_b": 0.5, "champion": "3", "challenger": "4"}
    assert s["data"]["requests_analysed"] == 3000
    assert any("the newest requests ran without a challenger" in n for n in s["notes"])


def test_the_first_champion_rows_of_a_test_belong_to_it(ab_logs):
    """At 50/50 the first B answer comes a row or two after the start: that is chance, not a period."""
    logs = ab_logs(LogSpec(phases=[Phase(400)], seed=36))
    assert "".join(read_requests(logs).rows["variant"].head(6)) == "AAAAAB"  # five champion rows first
    s = run(logs)
    assert not s["config"]["changed"] and s["data"]["requests_analysed"] == 400


def test_since_selects_the_window(ab_logs):
    logs = ab_logs(LogSpec(phases=[Phase(1000, split_b=0.2), Phase(1000, split_b=0.5)]))
    s = run(logs, since=pd.Timestamp("2026-11-24T09:10:00Z"))
    assert not s["config"]["changed"]
    assert s["data"]["requests_in_window"] == 801  # 0.5 s apart: request 1200 is at 09:10:00, "at or after"
    with pytest.raises(AnalysisError, match="no requests at or after --since"):
        run(logs, since=pd.Timestamp("2030-01-01T00:00:00Z"))


def test_no_feedback_yet_says_so_and_keeps_collecting(ab_logs):
    s = run(ab_logs(feedback_rate=0.0))
    assert s["verdict"]["action"] == COLLECT
    assert s["arms"]["A"]["accuracy"] != s["arms"]["A"]["accuracy"]  # nan: nothing to measure
    assert any(n.startswith("no feedback yet") for n in s["notes"])
    assert s["arms"]["A"]["latency_ms"]["p95"] > 0  # traffic numbers are still reported


def test_only_one_arm_says_so(ab_logs):
    s = run(ab_logs(LogSpec(phases=[Phase(500, split_b=0.0)])))
    assert s["arms"]["B"]["requests"] == 0
    assert not s["srm"]["applicable"]
    assert s["verdict"]["action"] == COLLECT
    assert any("only one arm has answers" in n for n in s["notes"])


def test_fallbacks_count_for_b_by_intention_to_treat_and_trip_the_guardrail(ab_logs):
    s = run(ab_logs(acc_a=0.80, acc_b=0.88, fallback_rate=0.2))
    b = s["arms"]["B"]
    assert b["fallbacks"] > 0 and b["answered"] == b["requests"] - b["fallbacks"]
    assert b["versions"] == ["4"]
    assert b["labelled"] > b["answered"] * 0.4  # the fallbacks' labelled rows count for B too
    assert any("intention-to-treat" in n for n in s["notes"])
    fallback = next(g for g in s["guardrails"] if g["name"] == "fallback rate")
    assert fallback["status"] == BREACHED and s["verdict"]["action"] == GUARDRAIL
    assert "fallback rate" in s["verdict"]["reason"]


def test_a_much_slower_challenger_is_not_promoted_for_its_accuracy(ab_logs):
    s = run(ab_logs(acc_a=0.80, acc_b=0.90, latency_b_ms=60.0))
    latency = next(g for g in s["guardrails"] if g["name"] == "p95 latency")
    assert latency["status"] == BREACHED and latency["ci_low"] > latency["margin"]
    assert s["verdict"]["action"] == GUARDRAIL and "p95 latency" in s["verdict"]["reason"]


def test_customers_served_by_both_arms_are_counted_reported_and_excluded(ab_logs):
    s = run(ab_logs(LogSpec(phases=[Phase(4000)], crossover=40, acc_a=0.80, acc_b=0.88)))
    assert 0 < s["crossover"]["customers"] <= 40 and s["crossover"]["requests"] > s["crossover"]["customers"]
    analysed = s["arms"]["A"]["requests"] + s["arms"]["B"]["requests"]
    assert analysed == s["data"]["requests_analysed"]  # the crossover requests are left out
    assert sum(s["srm"]["observed"].values()) == s["arms"]["A"]["customers"] + s["arms"]["B"]["customers"]
    assert any("crossover" in n for n in s["notes"])


def test_clustered_customers_widen_the_interval_beyond_the_request_level_one(ab_logs):
    """Busy customers who are all easy or all hard: the requests are not independent draws."""
    s = run(ab_logs(LogSpec(phases=[Phase(4000)], customers=100, customer_spread=1.5, acc_a=0.80, acc_b=0.80,
                            feedback_rate=1.0, seed=5)), sequential=False)
    a, b, c = s["arms"]["A"], s["arms"]["B"], s["comparison"]
    naive = stats.two_proportion_test(a["correct"], a["labelled"], b["correct"], b["labelled"], confidence=0.90)
    assert c["ci_high"] - c["ci_low"] > 1.5 * (naive.ci_high - naive.ci_low)
    assert c["units"] == 100


def test_malformed_rows_are_counted_and_skipped(ab_logs):
    logs = ab_logs(LogSpec(phases=[Phase(500)]))
    append_lines(shard_files(logs, REQUESTS)[-1], "not,a,row\n2026-11-24T10:00:00+00:00,torn")
    s = run(logs)
    assert s["data"]["malformed_request_rows"] == 2
    assert s["data"]["requests_in_log"] == 500
    assert any("skipped malformed log lines: 2" in n for n in s["notes"])


def test_last_feedback_wins_and_unknown_request_ids_are_dropped(ab_logs):
    logs = ab_logs(LogSpec(phases=[Phase(400)], feedback_rate=0.0, acc_a=1.0, acc_b=1.0))
    rows = read_requests(logs).rows
    first = rows.iloc[0]
    append_rows(logs, FEEDBACK_COLUMNS, [["2026-11-24T10:00:00+00:00", first["request_id"], "wrong_topic", "agent"],
                                         ["2026-11-24T10:05:00+00:00", first["request_id"], first["topic"], "agent"],
                                         ["2026-11-24T10:05:00+00:00", "no-such-request", "billing", "agent"]])
    assert tuple(read_feedback(logs).rows.columns) == FEEDBACK_COLUMNS
    s = run(logs)
    assert s["data"]["feedback_superseded"] == 1
    assert s["data"]["feedback_unknown_request"] == 1
    assert s["data"]["labelled_analysed"] == 1
    arm = s["arms"][first["variant"]]
    assert (arm["labelled"], arm["correct"]) == (1, 1)


def test_an_empty_log_is_an_analysis_error(tmp_path):
    with pytest.raises(AnalysisError, match="no rows yet"):
        run(tmp_path)


def test_a_request_logged_twice_by_a_client_retry_counts_once(ab_logs):
    logs = ab_logs(acc_a=0.80, acc_b=0.88)
    requests, feedback = read_requests(logs), read_feedback(logs)
    once = analyse(requests.rows, feedback.rows).summary
    twice = analyse(pd.concat([requests.rows, requests.rows.head(50)], ignore_index=True), feedback.rows).summary
    assert twice["data"]["requests_analysed"] == once["data"]["requests_analysed"]
    assert twice["arms"] == once["arms"]
