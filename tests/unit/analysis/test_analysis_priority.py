"""The A/B report's priority section (`analysis.priority`): each arm's priority accuracy and the urgent-missed
guardrail, on synthetic router logs whose versions answer a priority (conftest.py's logs, given priorities here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from experiment_logs import LogSpec, Phase
from summaries import topic_figures

from analysis.analysis import console
from analysis.experiment import analyse
from analysis.guardrails import BREACHED, NOT_APPLICABLE
from analysis.page import render_html
from analysis.priority import MEASURED, NAME
from analysis.report import ReportPaths
from analysis.verdict import GUARDRAIL, PROMOTE
from ticket_ab.requestlog import latest_labels, read_feedback, read_requests
from ticket_ab.schema import PRIORITIES
from ticket_ab.settings import ABSettings

pytestmark = pytest.mark.slow  # runs whole A/B reports: `make test` runs it, `make check` does not

FAST = ABSettings(resamples=50)
URGENT = "urgent"


def _logs(ab_logs, **spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    logs = ab_logs(LogSpec(**{"acc_a": 0.80, "acc_b": 0.90, "feedback_rate": 0.6, "customers": 300} | spec))
    return read_requests(logs).rows, read_feedback(logs).rows


def _with_priorities(requests: pd.DataFrame, feedback: pd.DataFrame, accuracy: dict[str, float | None],
                     seed: int = 0, urgent_as_low: dict[str, float] | None = None,
                     corrections: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each request's true priority (a quarter urgent), the priority its answering version served (blank for an arm
    whose accuracy is None: a one-head version), the truth on every feedback row, and `corrections` priority-only
    rows (some re-correcting a request, some for requests without a topic label, one for an unknown request)."""
    rng = np.random.default_rng(seed)
    truth = pd.Series(rng.choice(PRIORITIES, size=len(requests), p=[0.3, 0.25, 0.2, 0.25]), index=requests.index)
    served = truth.copy()
    for arm, acc in accuracy.items():
        rows = requests["variant"].eq(arm)
        if acc is None:
            served[rows] = ""
            continue
        wrong = rows & (rng.random(len(requests)) > acc)
        served[wrong] = [PRIORITIES[(PRIORITIES.index(t) + 1) % 4] for t in truth[wrong]]
        missing = rows & truth.eq(URGENT) & (rng.random(len(requests)) < (urgent_as_low or {}).get(arm, 0.0))
        served[missing] = "low"
    requests = requests.assign(priority=served.where(requests["topic"].ne(""), ""), priority_confidence="0.7")
    by_id = dict(zip(requests["request_id"], truth, strict=True))
    feedback = feedback.assign(priority=feedback["request_id"].map(by_id).fillna(""))
    picked = requests.sample(n=corrections, random_state=seed)
    extra = pd.DataFrame({"timestamp": picked["timestamp"] + pd.Timedelta(hours=1), "request_id": picked["request_id"],
                          "label": "", "source": "agent", "priority": rng.choice(PRIORITIES, size=corrections)})
    unknown = pd.DataFrame({"timestamp": [requests["timestamp"].iloc[0]], "request_id": ["no-such-request"],
                            "label": [""], "source": ["agent"], "priority": [URGENT]})
    return requests, pd.concat([feedback, extra, unknown], ignore_index=True)


def _joined(requests: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """The requests with a priority label, its value as `priority_label` (the join rule: `latest_labels`)."""
    labels, _ = latest_labels(feedback, set(requests["request_id"]))
    return requests.merge(labels[labels["priority"].ne("")][["request_id", "priority"]], on="request_id",
                          suffixes=("", "_label"))


def _shadow(ab_logs, seed: int, shadow_answers: float = 1.0,
            champion_answers: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shadow-mode logs with priorities: A right 70% of the time, B as A but `low` on a fifth of the tickets; each
    answers a priority on only `*_answers` of them (a one-head version on the rest)."""
    requests, feedback = _logs(ab_logs, phases=[Phase(4000, mode="shadow")])
    requests, feedback = _with_priorities(requests, feedback, {"A": 0.7})
    rng = np.random.default_rng(seed)
    shadow = requests["priority"].where(rng.random(len(requests)) < 0.8, "low")
    if shadow_answers < 1:
        shadow = shadow.where(rng.random(len(requests)) < shadow_answers, "")
    if champion_answers < 1:
        requests = requests.assign(priority=requests["priority"].where(rng.random(len(requests)) < champion_answers,
                                                                       ""))
    return requests.assign(shadow_priority=shadow.where(requests["shadow_topic"].ne(""), "")), feedback


def _summary(requests: pd.DataFrame, feedback: pd.DataFrame, th: ABSettings = FAST) -> dict:
    return analyse(requests, feedback, thresholds=th).summary


def _urgent(summary: dict) -> dict:
    return next(g for g in summary["guardrails"] if g["name"] == NAME)


def test_each_arms_priority_accuracy_equals_a_pandas_count_by_the_join_rule(ab_logs):
    requests, feedback = _with_priorities(*_logs(ab_logs), {"A": 0.7, "B": 0.8}, urgent_as_low={"B": 0.3})
    labels, _ = latest_labels(feedback, set(requests["request_id"]))
    assert (labels["label"].eq("") & labels["priority"].ne("")).any()  # priority-only requests are among them
    joined = _joined(requests, feedback)

    s = _summary(requests, feedback)

    for arm in ("A", "B"):
        rows = joined[joined["variant"].eq(arm)]
        urgent = rows[rows["priority_label"].eq(URGENT)]
        figures = s["arms"][arm]["priority"]
        assert figures["status"] == MEASURED
        assert figures["labelled"] == len(rows)
        assert figures["correct"] == int(rows["priority"].eq(rows["priority_label"]).sum())
        assert figures["accuracy"] == pytest.approx(figures["correct"] / len(rows))
        assert figures["accuracy_ci"][0] < figures["accuracy"] < figures["accuracy_ci"][1]
        assert figures["urgent"] == len(urgent)
        assert figures["urgent_missed"] == int(urgent["priority"].isin(["low", "medium", ""]).sum())  # "": an error
    assert _urgent(s)["diff"] == pytest.approx(s["arms"]["B"]["priority"]["urgent_missed_rate"]
                                               - s["arms"]["A"]["priority"]["urgent_missed_rate"])


def test_an_urgent_missed_breach_blocks_a_promotion_the_topics_would_give(ab_logs):
    logs = _logs(ab_logs)
    fine = _summary(*_with_priorities(*logs, {"A": 0.8, "B": 0.8}))
    assert fine["verdict"]["action"] == PROMOTE and _urgent(fine)["status"] != BREACHED

    missing = _summary(*_with_priorities(*logs, {"A": 0.8, "B": 0.8}, urgent_as_low={"B": 0.8}))

    assert _urgent(missing)["status"] == BREACHED
    assert missing["verdict"]["action"] == GUARDRAIL and NAME in missing["verdict"]["reason"]
    assert missing["comparison"]["diff"] == fine["comparison"]["diff"]  # the topics are judged alike


def test_an_arm_whose_version_has_no_priority_head_is_na_and_the_guardrail_is_not_judged(ab_logs):
    requests, feedback = _logs(ab_logs)
    topic_only = _summary(requests, feedback)
    one_head = _summary(*_with_priorities(requests, feedback, {"A": None, "B": 0.8}, urgent_as_low={"B": 0.9}))

    a, b = one_head["arms"]["A"]["priority"], one_head["arms"]["B"]["priority"]
    assert a["status"] == NOT_APPLICABLE and a["text"] == "n/a: v3 predicts no priority"
    assert b["status"] == MEASURED and b["labelled"] > 0
    g = _urgent(one_head)
    assert g["status"] == NOT_APPLICABLE and "v3 predicts no priority" in g["text"]
    assert one_head["verdict"] == topic_only["verdict"]
    assert topic_only["arms"]["A"]["priority"]["text"] == "n/a: no priority feedback"
    page = render_html(one_head, b"")
    assert "priority accuracy" in page and "n/a: v3 predicts no priority" in page and NAME in page


def test_priority_feedback_changes_no_topic_figure(ab_logs):
    requests, feedback = _with_priorities(*_logs(ab_logs), {"A": 0.7, "B": 0.8})
    topics_only = feedback[feedback["label"].ne("")].assign(priority="")
    before = _summary(requests, topics_only)

    after = _summary(requests, feedback)

    assert after["arms"]["B"]["priority"]["status"] == MEASURED
    assert before["arms"]["B"]["priority"]["status"] == NOT_APPLICABLE
    assert topic_figures(after) == topic_figures(before)


def test_shadow_mode_judges_both_models_on_the_same_tickets(ab_logs):
    requests, feedback = _shadow(ab_logs, 1)
    joined = _joined(requests, feedback)
    tried = joined[joined["topic"].ne("") & joined["shadow_topic"].ne("")]

    s = _summary(requests, feedback)

    for arm, answer in (("A", "priority"), ("B", "shadow_priority")):
        figures = s["arms"][arm]["priority"]
        assert figures["labelled"] == len(tried)
        assert figures["correct"] == int(tried[answer].eq(tried["priority_label"]).sum())
    urgent = tried[tried["priority_label"].eq(URGENT)]
    missed = {a: urgent[a].isin(["low", "medium"]).mean() for a in ("priority", "shadow_priority")}
    assert _urgent(s)["diff"] == pytest.approx(missed["shadow_priority"] - missed["priority"])
    assert _urgent(s)["status"] == BREACHED  # B answers a fifth of every ticket low, urgent ones too
    lines = console(s, ReportPaths(Path("r.png"), Path("r.html"), Path("r.json")))
    assert f"urgent missed {s['arms']['B']['priority']['urgent_missed']:,} of {len(urgent):,}" in lines


def test_requests_a_one_head_version_answered_within_the_window_are_left_out_not_counted_wrong(ab_logs):
    requests, feedback = _with_priorities(*_logs(ab_logs), {"A": 0.7, "B": 0.8}, urgent_as_low={"A": 0.3})
    answered = requests["variant"].eq("A") & requests["topic"].ne("") & requests["fallback"].eq("")
    early = answered & (np.arange(len(requests)) % 2 == 0)
    requests.loc[early, "priority"] = ""  # the champion was a one-head version for half of A's answers
    joined = _joined(requests, feedback)
    a_rows = joined[joined["variant"].eq("A")]
    scored = a_rows[a_rows["priority"].ne("") | a_rows["topic"].eq("") | a_rows["fallback"].ne("")]

    s = _summary(requests, feedback)

    figures = s["arms"]["A"]["priority"]
    assert figures["status"] == MEASURED
    assert figures["labelled"] == len(scored) and figures["unscored"] == len(a_rows) - len(scored) > 0
    assert figures["correct"] == int(scored["priority"].eq(scored["priority_label"]).sum())
    assert figures["accuracy"] == pytest.approx(figures["correct"] / len(scored))
    assert figures["urgent"] == int(scored["priority_label"].eq(URGENT).sum())
    assert s["arms"]["B"]["priority"]["unscored"] == 0
    lines = console(s, ReportPaths(Path("r.png"), Path("r.html"), Path("r.json")))
    assert f"({figures['unscored']:,} answered without a priority head, left out)" in lines


def test_shadow_mode_pairs_the_urgent_tickets_both_models_scored(ab_logs):
    # the challenger was one-head for half the window, the champion for a third
    requests, feedback = _shadow(ab_logs, 2, shadow_answers=0.5, champion_answers=0.7)
    joined = _joined(requests, feedback)
    tried = joined[joined["topic"].ne("") & joined["shadow_topic"].ne("")]

    s = _summary(requests, feedback)

    for arm, answer in (("A", "priority"), ("B", "shadow_priority")):
        scored = tried[tried[answer].ne("")]
        figures = s["arms"][arm]["priority"]
        assert figures["labelled"] == len(scored) and figures["unscored"] == len(tried) - len(scored) > 0
        assert figures["correct"] == int(scored[answer].eq(scored["priority_label"]).sum())
    both = tried[tried["priority"].ne("") & tried["shadow_priority"].ne("")]
    urgent = both[both["priority_label"].eq(URGENT)]
    assert 0 < len(urgent) < int(tried["priority_label"].eq(URGENT).sum())
    missed = {a: urgent[a].isin(["low", "medium"]).mean() for a in ("priority", "shadow_priority")}
    assert _urgent(s)["diff"] == pytest.approx(missed["shadow_priority"] - missed["priority"])
