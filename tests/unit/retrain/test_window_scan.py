"""The DAG's window read out of core (`retrain.tasks.windowscan`): the same window, counts and guarded feedback as
the in-memory definition, on a random log of Parquet and CSV days with duplicates, blank texts and torn lines;
and a drift sample that is seeded, bounded, stated, and never costs a labelled ticket."""

import hashlib
from collections import Counter
from datetime import date

import numpy as np
import pandas as pd
import pytest
from logfiles import append_lines, append_rows

from retrain.ml.drift import DriftSignals
from retrain.ml.drift_measure import Measurement, label_accuracy
from retrain.ml.feedback import guard_feedback
from retrain.tasks import check, collect, report
from retrain.tasks import window as win
from retrain.tasks.results import Checked, Collected
from retrain.tasks.windowscan import Sampling
from ticket_ab.compact import compact_day
from ticket_ab.logstore import REQUESTS, shard_files
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests
from ticket_ab.schema import PRIORITIES
from ticket_ab.settings import FeedbackSettings, get_settings

COLUMNS = [c for c in win.WINDOW_COLUMNS if c != "drift_sample"]
WATERMARK = "2026-03-01T12:00:00+00:00"  # in the compacted day: its earlier rows are read but not new
GUARDS = FeedbackSettings(min_rows=10_000)  # the guards' shares are not judged here: the join is
SEED = 7


def _stamp(day: int, ms: int) -> str:
    moment = pd.Timestamp(f"2026-03-0{day}T00:00:00Z") + pd.Timedelta(milliseconds=int(ms))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def _requests(rng: np.random.Generator, day: int, n: int, first: int) -> list[dict[str, str]]:
    """`n` requests of one day at distinct milliseconds: some retried (the same id later), some blank, some
    without an id."""
    ms = np.sort(rng.choice(86_000_000, size=n, replace=False))
    rows = []
    for k, at in enumerate(ms):
        i = first + k
        rid = "" if rng.random() < 0.02 else f"r{i}"
        if rows and rng.random() < 0.08:  # a retry logs an earlier request again
            rid = rng.choice([r["request_id"] for r in rows[-20:]])
        text = ["", "   ", "\u00a0"][i % 3] if rng.random() < 0.05 else f"printer {i} jams on page {i % 7}"
        rows.append({"timestamp": _stamp(day, at), "request_id": rid, "ticket_id": f"T{i}", "customer_id": f"C{i % 9}",
                     "variant": "A", "mode": "split", "split_b": "0.5", "topic": ["access", "email"][i % 2],
                     "text": text})
    return rows


def _feedback(rng: np.random.Generator, ids: list[str]) -> list[list[str]]:
    """Labels for about half the ids (some corrected later, some blank), and some for ids never served; a priority
    on some of them, and some giving only a priority."""
    rows, ms = [], 0
    for rid in ids + [f"ghost{k}" for k in range(5)]:
        for _ in range(int(rng.choice([0, 1, 2], p=[0.5, 0.4, 0.1]))):
            ms += int(rng.integers(1, 5000))
            label = "" if rng.random() < 0.05 else str(rng.choice(["access", "email", "network", "billing"]))
            source = str(rng.choice(["desk-1", "desk-2", "api"]))
            priority = "" if rng.random() < 0.6 else str(rng.choice(PRIORITIES))
            label = "" if priority and rng.random() < 0.3 else label
            rows.append([_stamp(2, 40_000_000 + ms), rid, label, source, priority])
    return rows


@pytest.fixture(scope="module")
def log_root(tmp_path_factory) -> str:
    """Day 1 compacted to Parquet (with a torn line folded into its metadata), day 2 open CSV shards with a torn
    line and a hand-edited one; feedback on day 2."""
    root = tmp_path_factory.mktemp("logs")
    rng = np.random.default_rng(25)
    day1, day2 = _requests(rng, 1, 400, 0), _requests(rng, 2, 400, 1000)
    (shard,) = append_rows(root, REQUEST_COLUMNS, day1)
    append_lines(shard, f"{_stamp(1, 80_000_000)},r-torn,T")  # torn inside the window, then folded by compaction
    compact_day(root, REQUESTS, date(2026, 3, 1), today=date(2026, 3, 10))
    append_rows(root, REQUEST_COLUMNS, day2)
    append_lines(shard_files(root, REQUESTS)[-1], "a hand edit without a checksum\n", f"{_stamp(2, 85_000_000)},r-cut")
    ids = sorted({r["request_id"] for r in day1 + day2 if r["request_id"]})
    append_rows(root, FEEDBACK_COLUMNS, _feedback(rng, ids))
    return root


def _reference(root, watermark: win.Watermark) -> win.Window:
    """The window as the in-memory path builds it: every row read into pandas, the sets in Python."""
    requests, feedback = read_requests(root, since=watermark.until), read_feedback(root, since=watermark.until)
    routed, request_stats = win.new_requests(requests.rows, watermark.until)
    labels, feedback_stats = guard_feedback(feedback.rows, set(requests.rows["request_id"]),
                                            set(routed["request_id"].dropna()), GUARDS, watermark.feedback_sources,
                                            priority_history=watermark.feedback_priority_sources)
    late = labels.loc[labels["late"], list(win.LATE_COLUMNS)].reset_index(drop=True)
    labels = labels.loc[~labels["late"]].drop(columns="late").replace({"label": {"": None}, "priority": {"": None}})
    frame = routed.drop(columns=["label", "label_source", "label_priority"]).merge(
        labels.rename(columns={"source": "label_source", "priority": "label_priority"}), on="request_id",
        how="left")[list(win.WINDOW_COLUMNS)]
    newest = requests.rows["timestamp"].max()
    until = newest.isoformat() if watermark.until is None or newest > watermark.until else watermark.requests_until
    labelled = frame["label"].notna() & frame["label"].astype(str).str.strip().ne("")
    stats = {"rows": len(frame), "router_rows": len(frame), "incoming_rows": 0, "labelled": int(labelled.sum()),
             "labelled_priority": int(frame["label_priority"].notna().sum()),
             "requests_read": len(requests.rows), "requests_malformed": requests.malformed, **request_stats,
             "feedback_read": len(feedback.rows), "feedback_malformed": feedback.malformed, **feedback_stats,
             "incoming_new_files": [], "incoming_bad_files": [], "watermark_from": watermark.requests_until,
             "watermark_to": until}
    stats["malformed"] = (stats["requests_malformed"] + stats["requests_empty_text"] + stats["feedback_malformed"]
                          + stats["feedback_blank"])
    sources = Counter(watermark.feedback_sources) + Counter(feedback_stats["feedback_sources"])
    priorities = Counter(watermark.feedback_priority_sources) + Counter(feedback_stats["feedback_priority_sources"])
    return win.Window(frame, stats, win.Watermark(until, {}, dict(sources), dict(priorities)), late)


def _scanned(root, watermark: win.Watermark, rows: int, tmp_path) -> win.Window:
    return win.collect(root, tmp_path / "no-incoming", watermark, GUARDS, sample=Sampling(rows, SEED, 128))


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in request-id order, labels' missing values alike, the timestamp in one unit."""
    out = frame[COLUMNS].astype({"timestamp": "datetime64[ns, UTC]"})
    labels = ["label", "label_source", "label_priority"]
    out[labels] = out[labels].astype(object).where(out[labels].notna(), None)
    return out.sort_values(["timestamp", "request_id"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("watermark", [win.Watermark(), win.Watermark(requests_until=WATERMARK)],
                         ids=["first-run", "from-watermark"])
def test_the_sql_window_is_the_in_memory_window_with_the_same_counts_and_guarded_feedback(log_root, watermark,
                                                                                         tmp_path):
    expected = _reference(log_root, watermark)
    scanned = _scanned(log_root, watermark, 10_000, tmp_path)  # a sample larger than the window: all of it
    assert expected.stats["requests_duplicate"] and expected.stats["requests_empty_text"]  # the log has both
    assert expected.stats["requests_malformed"] >= 3 and expected.stats["feedback_superseded"]
    priority_only = expected.frame["label"].isna() & expected.frame["label_priority"].notna()
    assert priority_only.any() and (expected.frame["label"].notna() & expected.frame["label_priority"].notna()).any()
    assert {k: scanned.stats[k] for k in expected.stats} == expected.stats
    pd.testing.assert_frame_equal(_comparable(scanned.frame), _comparable(expected.frame))
    assert scanned.frame["drift_sample"].all()
    pd.testing.assert_frame_equal(scanned.late, expected.late)
    assert scanned.next_watermark == expected.next_watermark


def test_a_window_larger_than_the_sample_keeps_every_labelled_ticket_and_counts_the_whole_window(log_root, tmp_path):
    expected = _reference(log_root, win.Watermark())
    scanned = _scanned(log_root, win.Watermark(), 50, tmp_path)
    labelled = expected.frame["label"].notna() | expected.frame["label_priority"].notna()  # a topic or a priority
    assert expected.stats["router_rows"] - int(labelled.sum()) > 50  # more unlabelled tickets than the sample
    assert {k: scanned.stats[k] for k in expected.stats} == expected.stats
    given = scanned.frame["label"].notna() | scanned.frame["label_priority"].notna()
    kept = scanned.frame.loc[given]
    pd.testing.assert_frame_equal(_comparable(kept), _comparable(expected.frame.loc[labelled]))
    assert int(scanned.frame["drift_sample"].sum()) == scanned.stats["sample_rows"] == 50
    assert len(scanned.frame) == len(kept) + int((scanned.frame["drift_sample"] & ~given).sum())


def test_the_sample_is_the_first_rows_by_the_seeded_hash_of_the_request_id(log_root, tmp_path):
    window = _reference(log_root, win.Watermark()).frame
    digest = window.assign(h=[hashlib.md5(f"{SEED}:{rid}".encode()).hexdigest() for rid in window["request_id"]])
    first = digest.sort_values(["h", "timestamp"], kind="stable").head(50)  # blank ids hash alike: then by time
    scanned = _scanned(log_root, win.Watermark(), 50, tmp_path).frame
    assert sorted(scanned.loc[scanned["drift_sample"], "ticket_id"]) == sorted(first["ticket_id"])


def test_the_sample_is_the_same_on_a_retry_and_another_seed_draws_another(log_root, tmp_path):
    first = _scanned(log_root, win.Watermark(), 50, tmp_path)
    retry = _scanned(log_root, win.Watermark(), 50, tmp_path)
    pd.testing.assert_frame_equal(first.frame, retry.frame)
    other = win.collect(log_root, tmp_path / "none", win.Watermark(), GUARDS, sample=Sampling(50, SEED + 1, 128))
    assert set(other.frame.loc[other.frame["drift_sample"], "ticket_id"]) != set(
        first.frame.loc[first.frame["drift_sample"], "ticket_id"])


def test_the_sample_is_stated_in_the_stats_and_the_summary(log_root, tmp_path):
    stats = _scanned(log_root, win.Watermark(), 50, tmp_path).stats
    assert stats["sample_limit"] == 50 and stats["sample_seed"] == SEED
    assert stats["sample"].startswith(f"drift on a sample of 50 of {stats['router_rows']} routed tickets, seed {SEED} "
                                      f"({stats['sample_unlabelled']} of its tickets unlabelled, of "
                                      f"{stats['unlabelled']})")
    assert stats["sample"] in win.summarize(stats)
    whole = _scanned(log_root, win.Watermark(), 10_000, tmp_path).stats
    assert whole["sample"] == f"drift on all {whole['router_rows']} routed tickets (at most 10000 are sampled, seed 7)"
    assert whole["sample"] not in win.summarize(whole)


def test_collect_window_saves_labelled_tickets_and_the_sample_and_counts_from_the_stats(tmp_path):
    settings = get_settings(home=tmp_path / "home", drift={"window_sample_rows": 3})
    rng = np.random.default_rng(3)
    requests = _requests(rng, 1, 40, 0)
    append_rows(settings.logs_dir, REQUEST_COLUMNS, requests)
    labelled = [r["request_id"] for r in requests if r["request_id"] and r["text"].strip()][:5]
    append_rows(settings.logs_dir, FEEDBACK_COLUMNS, [[_stamp(1, 86_000_000 + k), rid, "email", "desk-1"]
                                                      for k, rid in enumerate(labelled)])
    collected = collect.collect_window(settings, "manual__1")
    saved = pd.read_parquet(collected.window_path)
    assert set(labelled) <= set(saved["request_id"])
    assert saved["drift_sample"].sum() == collected.stats["sample_rows"] == 3
    assert collected.rows == collected.stats["router_rows"] > len(saved)  # the window's count, not the file's rows
    assert collected.stats["sample_seed"] == settings.seed and collected.stats["sample"] in collected.summary


def test_the_drift_check_judges_accuracy_on_every_labelled_ticket_and_the_size_of_the_whole_window():
    predicted = pd.Series(["email", "access", "email", "network"], dtype="string")
    labels = pd.Series(["email", None, "access", "network"])
    measured = Measurement(DriftSignals(window_rows=2, reference_rows=10, labelled=1, accuracy=0.0), None, 1.0)
    signals = check.whole_window(measured, 5000, predicted, labels).signals
    assert (signals.labelled, signals.accuracy) == label_accuracy(predicted, labels) == (3, pytest.approx(2 / 3))
    assert signals.window_rows == 5000 and signals.reference_rows == 10


def test_the_run_report_states_the_drift_sample():
    stats = {"rows": 900, "router_rows": 900, "incoming_rows": 0, "labelled": 10, "malformed": 0,
             "feedback_refused": False, "sample": "drift on a sample of 50 of 900 routed tickets, seed 7 (...)",
             "kept_rows": 58}
    collected = Collected(run_id="manual__1", run_dir="unused", window_path="unused", rows=900, labelled=10,
                          stats=stats, summary="", next_watermark={})
    checked = Checked(run_id="manual__1", retrain=False, status="no_drift", reasons=["calm"])
    markdown = report.render_markdown("line", collected, checked, None, None, "advanced")
    assert f"Sample: {stats['sample']} (the saved window: 58 routed tickets)." in markdown


@pytest.mark.parametrize("watermark", [win.Watermark(), win.Watermark(requests_until=WATERMARK)],
                         ids=["first-run", "from-watermark"])
def test_the_log_watchers_count_is_the_windows_routed_tickets(log_root, watermark):
    until = pd.Timestamp("2026-03-02T12:00:00Z")
    rows = read_requests(log_root, since=watermark.until, until=until).rows
    expected, _ = win.new_requests(rows, watermark.until)
    assert win.count_new(log_root, watermark, until, 128) == len(expected) > 0
