"""The feedback guards judge priorities apart from topic labels (`retrain.ml.feedback.guard_feedback`): a flood of
priorities from one source, or of one priority, refuses priorities only, and the topic labels the window uses are
exactly those it uses without any priority; a refused topic flood keeps the priorities; and a source is judged
"newly dominant" against the history of its own field, so an integration that sends only priorities is not
quarantined for sending no topics."""

from __future__ import annotations

import pandas as pd

from retrain.ml.feedback import guard_feedback
from ticket_ab.requestlog import FEEDBACK_COLUMNS
from ticket_ab.settings import FeedbackSettings

GUARDS = FeedbackSettings(min_rows=50, max_source_share=0.8, max_label_share=0.7)
TOPICS = ("access", "email", "network", "billing")
PRIORITIES = ("low", "medium", "high", "urgent")
HISTORY = {"desk-1": 60, "desk-2": 40}  # earlier windows' labels: two desks, no triage bot
PRIORITY_HISTORY = {"desk-1": 30, "desk-2": 20}  # and their priorities: the same two desks
IDS = [f"r{i}" for i in range(120)]


def _rows(entries: list[tuple[str, str, str, str]], start: int = 0) -> pd.DataFrame:
    """Feedback rows (request_id, label, source, priority), a second apart."""
    stamps = pd.date_range("2026-03-01T11:00:00Z", periods=len(entries), freq="s") + pd.Timedelta(seconds=start)
    frame = pd.DataFrame(entries, columns=["request_id", "label", "source", "priority"]).assign(timestamp=stamps)
    return frame[list(FEEDBACK_COLUMNS)]


def _topics() -> pd.DataFrame:
    """A topic label for each of the first 100 requests, from both desks, topics mixed."""
    return _rows([(rid, TOPICS[i % 4], f"desk-{1 + i % 2}", "") for i, rid in enumerate(IDS[:100])])


def _guard(feedback: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    return guard_feedback(feedback, set(IDS), set(IDS), GUARDS, HISTORY, priority_history=PRIORITY_HISTORY)


def _topic_part(labels: pd.DataFrame) -> pd.DataFrame:
    return labels.loc[labels["label"].ne(""), ["request_id", "label", "source"]].sort_values("request_id").reset_index(
        drop=True)


TOPIC_STATS = ("feedback_used", "feedback_sources", "feedback_refused", "feedback_blank", "feedback_superseded",
               "feedback_unknown_request")


def test_a_new_source_flooding_priorities_has_its_priorities_quarantined_and_the_topic_labels_are_untouched():
    alone, alone_stats = _guard(_topics())
    bot = [(rid, "", "triage-bot", PRIORITIES[i % 4]) for i, rid in enumerate(IDS[20:120])]
    desks = [(rid, "", "desk-1", "high") for rid in IDS[:12]]
    labels, stats = _guard(pd.concat([_topics(), _rows(bot + desks, start=500)], ignore_index=True))

    assert stats["feedback_priority_quarantined_source"] == "triage-bot"
    assert stats["feedback_priority_quarantined_rows"] == 100 and "priority labels" in stats[
        "feedback_priority_quarantined_reason"]
    assert "feedback_quarantined_source" not in stats and not stats["feedback_priority_refused"]
    pd.testing.assert_frame_equal(_topic_part(labels), _topic_part(alone))
    assert {k: stats[k] for k in TOPIC_STATS} == {k: alone_stats[k] for k in TOPIC_STATS}
    given = labels.loc[labels["priority"].ne("")]
    assert set(given["request_id"]) == set(IDS[:12]) and given["priority"].eq("high").all()
    assert stats["feedback_priority_used"] == 12
    assert set(labels["request_id"]) == set(IDS[:100])  # the bot's priority-only requests keep nothing


def test_one_priority_dominating_refuses_the_windows_priorities_only():
    urgent = [(rid, "", f"desk-{1 + i % 2}", "urgent") for i, rid in enumerate(IDS[:105])]
    calm = [(rid, "", "desk-1", "low") for rid in IDS[105:110]]
    labels, stats = _guard(pd.concat([_topics(), _rows(urgent + calm, start=500)], ignore_index=True))

    assert stats["feedback_priority_refused"] and stats["feedback_priority_refused_rows"] == 110
    assert "'urgent'" in stats["feedback_priority_refused_reasons"][0]
    assert not stats["feedback_refused"] and labels["priority"].eq("").all()
    pd.testing.assert_frame_equal(_topic_part(labels), _topic_part(_guard(_topics())[0]))


def test_an_outage_where_most_tickets_are_urgent_keeps_its_priorities_above_the_topic_labels_limit():
    share = 0.8
    assert GUARDS.max_label_share < share <= GUARDS.max_priority_share
    urgent = [(rid, "", f"desk-{1 + i % 2}", "urgent") for i, rid in enumerate(IDS[:int(110 * share)])]
    calm = [(rid, "", "desk-1", "low") for rid in IDS[int(110 * share):110]]
    labels, stats = _guard(pd.concat([_topics(), _rows(urgent + calm, start=500)], ignore_index=True))

    assert not stats["feedback_priority_refused"] and stats["feedback_priority_used"] == 110
    assert labels["priority"].eq("urgent").sum() == int(110 * share)


def test_a_refused_topic_flood_keeps_the_priorities_and_their_sources():
    flood = _rows([(rid, "email", f"desk-{1 + i % 2}", PRIORITIES[i % 4]) for i, rid in enumerate(IDS[:100])])
    labels, stats = _guard(flood)

    assert stats["feedback_refused"] and not stats["feedback_priority_refused"]
    assert labels["label"].eq("").all() and len(labels) == 100
    assert labels["priority"].tolist() == [PRIORITIES[i % 4] for i in range(100)]
    assert labels["source"].tolist() == [f"desk-{1 + i % 2}" for i in range(100)]
    assert stats["feedback_sources"] == {} and stats["feedback_used"] == 0 and stats["feedback_priority_used"] == 100


def test_an_integration_that_always_sent_the_priorities_is_judged_against_the_priorities_history():
    """The review's scenario: topics come from api and helpdesk, priorities from a triage tool that never sent one."""
    ids = IDS[:100]
    topics = [(rid, TOPICS[i % 4], ("api", "helpdesk")[i % 2], "") for i, rid in enumerate(ids[:50])]
    triage = [(rid, "", "triage", PRIORITIES[i % 4]) for i, rid in enumerate(ids[50:])]
    feedback = _rows(topics + triage)
    topic_history = {"api": 500, "helpdesk": 500}

    labels, stats = guard_feedback(feedback, set(ids), set(ids), GUARDS, topic_history,
                                   priority_history={"triage": 400, "helpdesk": 20})

    assert "feedback_priority_quarantined_source" not in stats and not stats["feedback_priority_refused"]
    assert stats["feedback_priority_used"] == 50
    assert set(labels.loc[labels["priority"].ne(""), "request_id"]) == set(ids[50:])
    assert stats["feedback_priority_sources"] == {"triage": 50}
    assert stats["feedback_sources"] == {"api": 25, "helpdesk": 25}

    _, newly = guard_feedback(feedback, set(ids), set(ids), GUARDS, topic_history,
                              priority_history={"helpdesk": 400, "api": 100})
    assert newly["feedback_priority_quarantined_source"] == "triage"  # newly dominant among the priorities: held
    assert newly["feedback_priority_used"] == 0 and newly["feedback_priority_sources"] == {}
