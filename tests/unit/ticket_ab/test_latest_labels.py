"""The one rule joining feedback to requests (`requestlog.latest_labels`), used by the retraining
window and the A/B report alike: the last label per request wins, unknown requests are dropped."""

import pandas as pd

from ticket_ab.requestlog import FEEDBACK_COLUMNS, latest_labels


def _feedback(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(FEEDBACK_COLUMNS))
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
    assert labels.empty and list(labels.columns) == list(FEEDBACK_COLUMNS)
    assert counts == {"blank": 0, "unknown_request": 0, "superseded": 0}
