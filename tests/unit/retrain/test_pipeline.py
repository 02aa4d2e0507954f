"""The DAG's task bodies without Airflow: branch, run keys, watermark, report line, XCom results, windows."""

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from airflow.sdk import serde
from logfiles import append_rows

from retrain.ml.held import judge_held
from retrain.tasks import check, collect, report
from retrain.tasks import window as win
from retrain.tasks.results import XCOM_CLASSES, Checked, Collected, Relabelled, Trained
from retrain.tasks.runs import expire_runs, run_dir, run_key, run_slug
from ticket_ab.requestlog import REQUEST_COLUMNS
from ticket_ab.settings import get_settings


def _checked(status="drift", retrain=True, reasons=("text_drift: AUC 0.700",)) -> Checked:
    return Checked(run_id="manual__1", retrain=retrain, status=status, reasons=list(reasons))


def test_branch_follows_the_decision():
    assert _checked(retrain=True).branch() == "relabel"
    assert _checked(status="no_drift", retrain=False).branch() == "skip"


def test_run_key_is_the_logical_date_so_a_rerun_reuses_it():
    when = datetime(2026, 3, 2, tzinfo=UTC)
    assert run_key(when, "manual__a") == run_key(when, "manual__b") == (
        "ticket_drift_retrain:2026-03-02T00:00:00+00:00")
    assert run_key(None, "api__x") == "ticket_drift_retrain:api__x"


def test_run_folders_and_reports_past_retention_go_but_never_the_current_run(tmp_path):
    settings = get_settings(home=str(tmp_path), log={"retention_days": 30})
    old, new, current = (run_dir(settings, f"manual__{n}") for n in ("old", "new", "current"))
    for folder in (old, new, current):
        folder.mkdir(parents=True)
        (folder / "window.parquet").write_bytes(b"tickets")
        folder.with_suffix(".md").write_text("report")
    month_ago = datetime.now(UTC).timestamp() - 31 * 86400
    for path in (old, old.with_suffix(".md"), current, current.with_suffix(".md")):
        os.utime(path, (month_ago, month_ago))
    removed = expire_runs(settings, keep="manual__current")
    assert sorted(p.name for p in removed) == ["manual__old", "manual__old.md"]
    assert not old.exists() and new.exists() and current.exists() and current.with_suffix(".md").exists()
    assert expire_runs(get_settings(home=str(tmp_path), log={"retention_days": 0}), keep="x") == []


def test_run_slug_is_a_safe_file_name():
    assert run_slug("manual__2026-03-02T00:00:00+00:00") == "manual__2026-03-02T00_00_00_00_00"


@pytest.mark.parametrize(("status", "retrain", "trained", "advance"), [
    ("no_drift", False, None, True),
    ("too_small", False, None, False),
    ("no_reference", False, None, False),
    ("drift", True, Trained(key="k", version="3"), True),
    ("drift", True, Trained(key="k", why="few gold"), False),
])
def test_watermark_moves_only_when_the_window_is_done(status, retrain, trained, advance):
    assert report.watermark_decision(_checked(status, retrain), trained)[0] is advance


def test_a_drifted_window_whose_feedback_was_refused_does_not_stall_the_watermark():
    advance, note = report.watermark_decision(_checked("drift", True), Trained(key="k", why="few gold"), refused=True)
    assert advance is True and "refused" in note


def _collected(rows=500, **stats) -> Collected:
    base = {"rows": rows, "router_rows": rows, "incoming_rows": 0, "labelled": 10, "malformed": 2,
            "feedback_refused": False}
    return Collected(run_id="manual__1", run_dir="unused", window_path="unused", rows=rows, labelled=10,
                     stats={**base, **stats}, summary="", next_watermark={})


def test_summary_line_names_decision_reasons_counts_and_outcome():
    trained = Trained(key="k", version="4", passed=True, alias="challenger", metrics={"macro_f1": 0.91},
                      champion_metrics={"macro_f1": 0.72})
    line = report.summary_line(_collected(), _checked(), trained)
    assert line == ("manual__1: drift (text_drift: AUC 0.700); window 500 tickets, 10 labelled, 2 malformed skipped; "
                    "v4 registered, macro-F1 0.910 vs champion 0.720, gate passed, alias challenger")
    quiet = report.summary_line(_collected(), _checked("no_drift", False, ["calm"]), None)
    assert quiet.endswith("no new version: no retraining needed")


def test_the_report_shows_each_held_topics_label_free_checks_and_names_an_abandoned_one():
    held = [{"topic": "billing", "champion_tickets": 90, "candidate_tickets": 80, "share": 0.889,
             "confident_tickets": 3, "agreement": None, "failures": []},
            {"topic": "network", "champion_tickets": 200, "candidate_tickets": 60, "share": 0.3,
             "confident_tickets": 40, "agreement": 1.0, "failures": ["the challenger gives it to 60 window tickets, "
                                                                     "the champion to 200 (0.30 < 0.50)"]}]
    trained = Trained(key="k", version="4", passed=False, gate_reason="held topic 'network' abandoned: ...",
                      gate={"held_topics": held, "held_share": 0.5, "held_agreement": 0.9})
    markdown = report.render_markdown("line", _collected(), _checked(), None, trained, "kept")
    assert "Held topics (their window labels were quarantined)" in markdown
    assert "| billing | 90 | 80 | 0.89 | 3 | not judged | kept |" in markdown
    assert ("| network | 200 | 60 | 0.30 | 40 | 1.00 | ABANDONED: the challenger gives it to 60 window tickets, "
            "the champion to 200 (0.30 < 0.50) |") in markdown


@pytest.fixture
def airflow_trusts_our_results(monkeypatch):
    """Airflow's serde as every Airflow process of ours configures it (`XCOM_CLASSES`)."""
    monkeypatch.setenv("AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES", XCOM_CLASSES)
    for cached in (serde._get_patterns, serde._match_glob, serde._match_regexp):
        cached.cache_clear()
    yield
    for cached in (serde._get_patterns, serde._match_glob, serde._match_regexp):
        cached.cache_clear()


@pytest.mark.parametrize("result", [
    _checked(),
    _collected(),
    Trained(key="k", version="4", passed=True, metrics={"macro_f1": 0.91}),
    Relabelled(train_path="a", holdout_path="b", review_path="c", stats={"gold": 3}, patterns=["x->y: 9"],
               held_topics=["x", "y"]),
])
def test_task_results_travel_through_airflows_xcom_serde_and_come_back_as_the_same_type(result,
                                                                                         airflow_trusts_our_results):
    stored = json.loads(json.dumps(serde.serialize(result)))  # XCom keeps JSON
    back = serde.deserialize(stored)
    assert type(back) is type(result) and back == result


def test_a_gate_that_could_not_judge_a_held_topic_still_travels_as_strict_json(airflow_trusts_our_results):
    (check,) = judge_held(["network"], np.array(["email"] * 20), np.ones(20), np.array(["email"] * 20), share=0.5,
                          agreement=0.9, sure=0.8, min_rows=15)
    trained = Trained(key="k", version="4", gate={"held_topics": [asdict(check)]})
    stored = json.loads(json.dumps(serde.serialize(trained), allow_nan=False))  # Airflow's API client refuses NaN
    assert serde.deserialize(stored) == trained


def test_airflow_refuses_to_rebuild_our_results_without_the_allow_list(monkeypatch):
    monkeypatch.delenv("AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES", raising=False)
    for cached in (serde._get_patterns, serde._match_glob, serde._match_regexp):
        cached.cache_clear()
    with pytest.raises(ImportError, match="allowed_deserialization_classes"):
        serde.deserialize(json.loads(json.dumps(serde.serialize(_checked()))))
    for cached in (serde._get_patterns, serde._match_glob, serde._match_regexp):
        cached.cache_clear()


def test_collect_window_saves_the_window_for_the_run(tmp_path):
    settings = get_settings(home=tmp_path / "home")
    rows = []
    for i in range(3):
        values = {c: "" for c in REQUEST_COLUMNS}
        values.update(timestamp=f"2026-03-01T10:00:0{i}+00:00", request_id=f"r{i}", topic="email",
                      text=f"mail stuck {i}", split_b="0.5", confidence="0.8", latency_ms="1")
        rows.append([values[c] for c in REQUEST_COLUMNS])
    append_rows(settings.logs_dir, REQUEST_COLUMNS, rows)

    collected = collect.collect_window(settings, "manual__1")
    assert collected.directory == run_dir(settings, "manual__1")
    assert collected.rows == 3
    assert pd.read_parquet(collected.window_path)["request_id"].tolist() == ["r0", "r1", "r2"]
    assert collected.next_watermark["requests_until"] == "2026-03-01T10:00:02+00:00"
    assert win.load_watermark(win.watermark_path(settings.airflow_dir)) == win.Watermark()  # not committed yet


def test_a_tiny_window_is_decided_without_contacting_mlflow(tmp_path):
    settings = get_settings(home=tmp_path, tracking_uri="http://127.0.0.1:9", drift={"min_window": 200})
    checked = check.check_drift(settings, _collected(rows=12))
    assert checked.retrain is False and checked.status == "too_small"
    assert checked.reasons == ["window too small: 12 tickets < min_window 200; waiting for more"]
