import json

import pandas as pd
import pytest
from logfiles import append_lines, append_rows

from retrain.tasks import window as win
from ticket_ab.pii import mask
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from ticket_ab.settings import FeedbackSettings


def _request(i: int, *, minute: int = 0, text: str | None = None) -> list[str]:
    values = {c: "" for c in REQUEST_COLUMNS}
    values.update(timestamp=f"2026-03-01T10:{minute:02d}:{i % 60:02d}+00:00", request_id=f"r{i}",
                  ticket_id=f"T{i}", variant="A", split_b="0.5", mode="split", topic="access", confidence="0.9",
                  latency_ms="2.5", text=f"cannot log in to the portal, attempt {i}" if text is None else text)
    return [values[c] for c in REQUEST_COLUMNS]


def _feedback(request_id: str, label: str, *, second: int = 0, source: str = "agent-1") -> list[str]:
    return [f"2026-03-01T11:00:{second:02d}+00:00", request_id, label, source]


@pytest.fixture
def paths(tmp_path):
    return {"logs": tmp_path / "logs", "incoming_dir": tmp_path / "incoming"}


def _collect(paths, watermark=None, guards=None):
    return win.collect(paths["logs"], paths["incoming_dir"], watermark or win.Watermark(), guards or FeedbackSettings())


def test_watermark_round_trips_atomically_and_a_missing_one_reads_everything(tmp_path):
    path = tmp_path / "state" / "wm.json"
    assert win.load_watermark(path) == win.Watermark()
    saved = win.save_watermark(path, win.Watermark("2026-03-01T10:00:05+00:00", {"a.csv": "10:1"}), run_id="r1")
    assert win.load_watermark(path) == saved
    assert saved.run_id == "r1" and saved.committed_at
    assert [p.name for p in path.parent.iterdir()] == ["wm.json"]  # no temp file left behind


def test_a_corrupt_watermark_is_treated_as_none(tmp_path):
    path = tmp_path / "wm.json"
    path.write_text("{not json")
    assert win.load_watermark(path) == win.Watermark()


def test_only_requests_after_the_watermark_enter_and_the_next_watermark_is_the_newest(paths):
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(i) for i in range(5)])
    first = _collect(paths)
    assert first.frame["request_id"].tolist() == ["r0", "r1", "r2", "r3", "r4"]
    assert first.next_watermark.requests_until == "2026-03-01T10:00:04+00:00"

    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(i, minute=1) for i in range(5, 7)])
    second = _collect(paths, first.next_watermark)
    assert second.frame["request_id"].tolist() == ["r5", "r6"]
    assert second.stats["watermark_from"] == "2026-03-01T10:00:04+00:00"


def test_malformed_and_empty_rows_are_counted_and_skipped_not_fatal(paths):
    bad_time = _request(3)
    bad_time[0] = "yesterday"
    first_day, _today = append_rows(paths["logs"], REQUEST_COLUMNS,  # an unreadable timestamp goes to today
                                    [_request(1), bad_time, _request(2, text="   "), _request(4), _request(4)])
    append_lines(first_day, "only,three,fields\n",  # a hand edit: no checksum
                 "2026-03-01T10:00:09+00:00,r9,T9")  # torn last line
    window = _collect(paths)
    assert window.frame["request_id"].tolist() == ["r1", "r4"]
    assert window.stats["requests_malformed"] == 3
    assert window.stats["requests_empty_text"] == 1
    assert window.stats["requests_duplicate"] == 1
    assert window.stats["malformed"] == 4


def test_feedback_is_joined_last_label_wins_and_unknown_requests_are_dropped(paths):
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(i) for i in range(3)])
    append_rows(paths["logs"], FEEDBACK_COLUMNS, [
        _feedback("r0", "email", second=1),
        _feedback("r0", "access", second=2),  # the agent corrected it
        _feedback("r1", "network", second=3),
        _feedback("ghost", "billing", second=4),  # never served by the router
        _feedback("r2", "", second=5),
    ])
    window = _collect(paths)
    labels = dict(zip(window.frame["request_id"], window.frame["label"], strict=True))
    assert labels["r0"] == "access" and labels["r1"] == "network" and pd.isna(labels["r2"])
    assert window.stats["feedback_unknown_request"] == 1
    assert window.stats["feedback_superseded"] == 1
    assert window.stats["feedback_blank"] == 1
    assert window.stats["labelled"] == 2


def test_feedback_for_requests_of_an_earlier_window_is_not_used(paths):
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(0), _request(1, minute=5)])
    append_rows(paths["logs"], FEEDBACK_COLUMNS, [_feedback("r0", "email"), _feedback("r1", "network")])
    window = _collect(paths, win.Watermark(requests_until="2026-03-01T10:00:00+00:00"))
    assert window.frame["request_id"].tolist() == ["r1"]
    assert window.stats["feedback_outside_window"] == 1 and window.stats["feedback_used"] == 1


def _history(paths, sources):
    """An earlier, consumed window whose feedback came from `sources` (cycled); returns its watermark."""
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(100 + i, minute=0) for i in range(40)])
    append_rows(paths["logs"], FEEDBACK_COLUMNS,
           [_feedback(f"r{100 + i}", ["access", "email"][i % 2], source=sources[i % len(sources)]) for i in range(40)])
    return _collect(paths).next_watermark


def _window_feedback(paths, label, source, n=60):
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(i, minute=5) for i in range(n)])
    append_rows(paths["logs"], FEEDBACK_COLUMNS,
                [_feedback(f"r{i}", label(i), source=source(i)) for i in range(n)])


def test_a_source_that_suddenly_dominates_the_feedback_has_its_labels_quarantined_and_the_rest_are_used(paths):
    watermark = _history(paths, [f"agent-{k}" for k in range(5)])
    _window_feedback(paths, lambda i: ["access", "email", "network"][i % 3],
                     lambda i: "bot" if i % 10 else f"agent-{i % 5}")
    window = _collect(paths, watermark)
    assert window.stats["feedback_refused"] is False
    assert window.stats["feedback_quarantined_source"] == "bot"
    assert window.stats["feedback_quarantined_rows"] == 54
    assert window.stats["labelled"] == 6  # the other sources' labels are used
    assert "bot" not in set(window.frame["label_source"].dropna())
    assert len(window.frame) == 60  # the tickets stay: only the source's labels are untrusted
    assert window.stats["feedback_quarantined_reason"] == (
        "source 'bot' gives 90% of 60 feedback labels (limit 80%; 0% of earlier feedback): its labels are quarantined")
    assert "bot" not in window.next_watermark.feedback_sources  # a flood never becomes the history
    assert "quarantined" in win.summarize(window.stats)


def test_a_source_that_always_gave_most_feedback_is_not_refused(paths):
    watermark = _history(paths, ["api"])  # the router's default source: every client leaves it out
    _window_feedback(paths, lambda i: ["access", "email", "network"][i % 3], lambda i: "api")
    window = _collect(paths, watermark)
    assert window.stats["feedback_refused"] is False and window.stats["labelled"] == 60


def test_one_label_dominating_the_feedback_is_refused_whatever_the_history(paths):
    _window_feedback(paths, lambda i: "billing", lambda i: f"agent-{i % 5}")
    window = _collect(paths)
    assert window.stats["feedback_refused"] is True
    assert window.stats["feedback_refused_reasons"] == [
        "label 'billing' gives 100% of 60 feedback labels (limit 70%): window feedback refused"]


def test_feedback_shares_are_not_judged_below_the_minimum_count(paths):
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(i) for i in range(10)])
    append_rows(paths["logs"], FEEDBACK_COLUMNS,
                [_feedback(f"r{i}", "billing", source="bot") for i in range(10)])
    window = _collect(paths, guards=FeedbackSettings(min_rows=50))
    assert window.stats["feedback_refused"] is False and window.stats["labelled"] == 10


def test_incoming_files_are_read_once_with_their_labels_and_bad_files_are_skipped_with_a_reason(paths):
    incoming = paths["incoming_dir"]
    incoming.mkdir(parents=True)
    pd.DataFrame({"text": ["printer jams", "vpn drops"], "topic": ["hardware", None],
                  "ticket_id": ["X1", "X2"]}).to_csv(incoming / "export.csv", index=False)
    pd.DataFrame({"body": ["no text column"]}).to_csv(incoming / "broken.csv", index=False)
    first = _collect(paths)
    assert sorted(first.frame["ticket_id"]) == ["X1", "X2"]
    assert first.frame.set_index("ticket_id").loc["X1", "label"] == "hardware"
    assert first.stats["labelled"] == 1
    (bad,) = first.stats["incoming_bad_files"]
    assert bad["file"] == "broken.csv" and "missing required column 'text'" in bad["reason"]
    assert first.stats["malformed"] == 1

    second = _collect(paths, first.next_watermark)
    assert second.stats["rows"] == 0 and second.stats["incoming_bad_files"] == []

    pd.DataFrame({"text": ["printer jams again"]}).to_csv(incoming / "export.csv", index=False)
    third = _collect(paths, first.next_watermark)
    assert third.frame["text"].tolist() == ["printer jams again"]


def test_incoming_tickets_are_masked_on_the_way_in_exactly_as_the_router_masks_a_request(paths):
    texts = ["mail me at jane.doe@example.com", "call +44 20 7946 0958 about card 4111 1111 1111 1111", "vpn drops"]
    paths["incoming_dir"].mkdir(parents=True)
    pd.DataFrame({"text": texts, "customer_id": ["jane.doe@example.com", "+44 20 7946 0958", "acme-42"],
                  "ticket_id": ["P1", "P2", "P3"]}).to_csv(paths["incoming_dir"] / "export.csv", index=False)
    frame = _collect(paths).frame.set_index("ticket_id").loc[["P1", "P2", "P3"]]
    assert frame["text"].tolist() == [mask(t) for t in texts]
    assert frame["text"].tolist()[:2] != texts[:2]  # there was something to mask
    assert frame["customer_id"].isna().tolist() == [True, True, False]  # personal ids dropped, others kept
    assert frame.loc["P3", "customer_id"] == "acme-42"


def test_the_watermark_carries_the_feedback_sources_of_the_windows_it_consumed(paths, tmp_path):
    first = _history(paths, ["agent-1", "agent-2"])
    assert first.feedback_sources == {"agent-1": 20, "agent-2": 20}
    path = tmp_path / "wm.json"
    win.save_watermark(path, first, run_id="r1")
    assert win.load_watermark(path).feedback_sources == first.feedback_sources
    _window_feedback(paths, lambda i: ["access", "email", "network"][i % 3], lambda i: f"agent-{1 + i % 2}")
    assert _collect(paths, first).next_watermark.feedback_sources == {"agent-1": 50, "agent-2": 50}


def _triaged_window(paths, first: int, minute: int) -> None:
    """60 requests, each with a topic from api or helpdesk and a priority alone from the triage tool."""
    ids = [f"r{first + i}" for i in range(60)]
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(first + i, minute=minute) for i in range(60)])
    topics = [[*_feedback(rid, ["access", "email", "network"][i % 3], second=i % 30,
                          source=("api", "helpdesk")[i % 2]), ""] for i, rid in enumerate(ids)]
    priorities = [[f"2026-03-01T11:{minute + 1:02d}:{i % 60:02d}+00:00", rid, "", "triage",
                   ["low", "medium", "high", "urgent"][i % 4]] for i, rid in enumerate(ids)]
    append_rows(paths["logs"], FEEDBACK_COLUMNS, topics + priorities)


def test_the_watermark_carries_the_priorities_sources_apart_and_a_triage_tool_keeps_its_priorities(paths, tmp_path):
    path = tmp_path / "wm.json"
    path.write_text(json.dumps({"requests_until": None, "feedback_sources": {"api": 500, "helpdesk": 500}}))
    old = win.load_watermark(path)  # written before priorities had a history of their own
    assert old.feedback_priority_sources == {}
    _triaged_window(paths, 100, minute=0)
    first = _collect(paths, old)
    assert first.stats["feedback_priority_used"] == 60  # no history of priorities yet: nothing judged
    assert first.next_watermark.feedback_priority_sources == {"triage": 60}
    saved = win.save_watermark(path, first.next_watermark, run_id="r1")
    assert win.load_watermark(path) == saved and saved.feedback_priority_sources == {"triage": 60}

    _triaged_window(paths, 200, minute=5)
    second = _collect(paths, win.load_watermark(path))
    assert "feedback_priority_quarantined_source" not in second.stats  # judged against the priorities' history
    assert second.stats["feedback_priority_used"] == 60 and second.stats["labelled_priority"] == 60
    assert second.next_watermark.feedback_priority_sources == {"triage": 120}
    assert second.next_watermark.feedback_sources == {"api": 560, "helpdesk": 560}  # 500 + 30 + 30 each


def test_late_feedback_for_a_request_of_an_earlier_window_is_not_used(paths):
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(0), _request(1, minute=5)])
    first = _collect(paths)
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(2, minute=6)])
    append_rows(paths["logs"], FEEDBACK_COLUMNS, [_feedback("r0", "email"), _feedback("r2", "network")])
    window = _collect(paths, first.next_watermark)
    assert window.frame["request_id"].tolist() == ["r2"]
    assert window.stats["feedback_used"] == 1 and window.stats["feedback_unknown_request"] == 1


def test_the_window_opens_only_the_days_from_the_watermark_on(paths):
    old = [_request(i) for i in range(3)]
    for values in old:
        values[0] = values[0].replace("2026-03-01", "2026-02-20")
    append_rows(paths["logs"], REQUEST_COLUMNS, old + [_request(5, minute=5)])
    window = _collect(paths, win.Watermark(requests_until="2026-03-01T09:00:00+00:00"))
    assert window.frame["request_id"].tolist() == ["r5"]
    assert window.stats["requests_read"] == 1


def test_window_stats_are_json_serializable(paths):
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(0)])
    window = _collect(paths)
    json.dumps(window.stats)


def test_requests_stamped_within_the_settle_time_wait_for_the_next_run(paths):
    """A row is stamped before it is written: reading up to `settle_s` ago keeps a late row above the watermark."""
    fresh = _request(9)
    fresh[REQUEST_COLUMNS.index("timestamp")] = pd.Timestamp.now(tz="UTC").isoformat()
    append_rows(paths["logs"], REQUEST_COLUMNS, [_request(i) for i in range(3)] + [fresh])
    settled = win.collect(paths["logs"], paths["incoming_dir"], win.Watermark(), FeedbackSettings(), settle_s=60)
    assert settled.frame["request_id"].tolist() == ["r0", "r1", "r2"]
    later = win.collect(paths["logs"], paths["incoming_dir"], settled.next_watermark, FeedbackSettings())
    assert later.frame["request_id"].tolist() == ["r9"]
