"""The one rule joining feedback to requests (`requestlog.latest_labels`), used by the retraining
window and the A/B report alike: the last label per request wins, and separately the last priority; unknown requests
are dropped."""

import pandas as pd

from ticket_ab.requestlog import FEEDBACK_COLUMNS, LABEL_COLUMNS, latest_labels


def _feedback(*rows: tuple[str, ...]) -> pd.DataFrame:
    """Rows of (timestamp, request_id, label, source[, priority]): without a priority, as logs before it."""
    frame = pd.DataFrame([(*r, "")[:5] for r in rows], columns=list(FEEDBACK_COLUMNS))
    return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))


def test_the_last_label_per_request_wins_by_timestamp_not_by_file_order():
    feedback = _feedback(("2026-03-01T11:05:00Z", "r1", "network", "agent-2"),
                         ("2026-03-01T11:00:00Z", "r1", "email", "agent-1"),
                         ("2026-03-01T11:00:00Z", "r2", "billing", "agent-1"))
    labels, counts = latest_labels(feedback, {"r1", "r2"})
    assert dict(zip(labels["request_id"], labels["label"], strict=True)) == {"r1": "network", "r2": "billing"}
    assert counts == {"blank": 0, "unknown_request": 0, "superseded": 1}


def test_equal_timestamps_keep_log_order_so_the_later_line_wins():
    feedback = _feedback(("2026-03-01T11:00:00Z", "r1", "email", "agent-1"),
                         ("2026-03-01T11:00:00Z", "r1", "access", "agent-1"))
    labels, _ = latest_labels(feedback, {"r1"})
    assert labels["label"].tolist() == ["access"]


def test_unknown_requests_and_blank_rows_are_counted_and_dropped():
    feedback = _feedback(("2026-03-01T11:00:00Z", "no-such-request", "email", "agent-1"),
                         ("2026-03-01T11:00:00Z", "r1", "  ", "agent-1"),
                         ("2026-03-01T11:00:00Z", "", "email", "agent-1"),
                         ("2026-03-01T11:00:00Z", "r1", " hardware ", " agent-3 "))
    labels, counts = latest_labels(feedback, {"r1"})
    assert labels[["request_id", "label", "source"]].values.tolist() == [["r1", "hardware", "agent-3"]]
    assert counts == {"blank": 2, "unknown_request": 1, "superseded": 0}


def test_a_later_label_for_an_unknown_request_does_not_supersede_a_known_one():
    feedback = _feedback(("2026-03-01T11:00:00Z", "r1", "email", "agent-1"),
                         ("2026-03-01T11:09:00Z", "r9", "billing", "agent-1"))
    labels, counts = latest_labels(feedback, {"r1"})
    assert labels["request_id"].tolist() == ["r1"]
    assert counts["superseded"] == 0 and counts["unknown_request"] == 1


def test_no_feedback_is_no_labels():
    labels, counts = latest_labels(_feedback(), {"r1"})
    assert labels.empty and list(labels.columns) == list(LABEL_COLUMNS)
    assert counts == {"blank": 0, "unknown_request": 0, "superseded": 0}


def test_a_priority_only_correction_keeps_the_earlier_topic_label_and_a_label_only_one_the_earlier_priority():
    feedback = _feedback(("2026-03-01T11:00:00Z", "r1", "network", "agent-1", "low"),
                         ("2026-03-01T11:05:00Z", "r1", "", "agent-2", "urgent"),
                         ("2026-03-01T11:00:00Z", "r2", "", "agent-1", "high"),
                         ("2026-03-01T11:07:00Z", "r2", "email", "agent-3", ""))
    labels, counts = latest_labels(feedback, {"r1", "r2"})
    got = labels.set_index("request_id")[["label", "source", "priority", "priority_source"]].to_dict("index")
    assert got == {"r1": {"label": "network", "source": "agent-1", "priority": "urgent", "priority_source": "agent-2"},
                   "r2": {"label": "email", "source": "agent-3", "priority": "high", "priority_source": "agent-1"}}
    assert labels.set_index("request_id")["timestamp"].to_dict() == {
        "r1": pd.Timestamp("2026-03-01T11:05:00Z"), "r2": pd.Timestamp("2026-03-01T11:07:00Z")}
    assert counts == {"blank": 0, "unknown_request": 0, "superseded": 0}  # superseded: label rows only


def test_a_priority_only_request_has_a_blank_label_and_its_sources_source():
    feedback = _feedback(("2026-03-01T11:00:00Z", "r1", "  ", "agent-1", " medium "),
                         ("2026-03-01T11:01:00Z", "r1", "", "agent-2", "high"))
    labels, counts = latest_labels(feedback, {"r1"})
    assert labels[["request_id", "label", "source", "priority", "priority_source"]].values.tolist() == [
        ["r1", "", "agent-2", "high", "agent-2"]]
    assert counts == {"blank": 0, "unknown_request": 0, "superseded": 0}


def test_blank_means_neither_a_label_nor_a_priority_and_unknown_priorities_are_unknown_requests():
    feedback = _feedback(("2026-03-01T11:00:00Z", "r1", " ", "agent-1", " "),
                         ("2026-03-01T11:00:00Z", "", "", "agent-1", "low"),
                         ("2026-03-01T11:00:00Z", "no-such", "", "agent-1", "low"),
                         ("2026-03-01T11:00:00Z", "r1", "", "agent-1", "low"))
    labels, counts = latest_labels(feedback, {"r1"})
    assert labels["request_id"].tolist() == ["r1"]
    assert counts == {"blank": 2, "unknown_request": 1, "superseded": 0}


def test_the_topic_labels_and_counts_are_the_same_with_priority_corrections_added():
    topics = [("2026-03-01T11:00:00Z", "r1", "email", "agent-1"), ("2026-03-01T11:03:00Z", "r1", "access", "agent-2"),
              ("2026-03-01T11:01:00Z", "r2", "billing", "agent-1"), ("2026-03-01T11:02:00Z", "r9", "email", "agent-1"),
              ("2026-03-01T11:02:00Z", "r3", "", "agent-1")]
    priorities = [("2026-03-01T11:04:00Z", "r1", "", "agent-3", "urgent"),
                  ("2026-03-01T11:00:30Z", "r3", "", "agent-3", "low"),
                  ("2026-03-01T11:00:30Z", "r4", "", "agent-3", "low")]
    before, counted = latest_labels(_feedback(*topics), {"r1", "r2", "r3", "r4"})
    after, counts = latest_labels(_feedback(*topics, *priorities), {"r1", "r2", "r3", "r4"})
    topic_rows = after.loc[after["label"].ne(""), ["request_id", "label", "source"]].sort_values("request_id")
    pd.testing.assert_frame_equal(topic_rows.reset_index(drop=True),
                                  before[["request_id", "label", "source"]].sort_values("request_id")
                                  .reset_index(drop=True))
    assert counts == counted and counted["blank"] == 1
    assert set(after.loc[after["label"].eq(""), "request_id"]) == {"r3", "r4"}
