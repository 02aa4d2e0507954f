"""The real DAG end to end: `airflow dags test ticket_drift_retrain` against a real MLflow server."""

import json

import pandas as pd
import pytest
from logfiles import append_lines, append_rows

from load_test.simulate.generator import generate
from retrain.tasks import window as win
from ticket_ab import registry
from ticket_ab.logstore import REQUESTS, shard_files
from ticket_ab.requestlog import FEEDBACK_COLUMNS

pytestmark = pytest.mark.slow


def _window(scenario: str, n: int, seed: int) -> pd.DataFrame:
    return generate(scenario, n, seed, start="2026-04-01T00:00:00Z")  # a month after the champion's data


def test_no_drift_window_skips_and_registers_nothing(dag_settings, router_logs, run_dag, versions):
    router_logs(dag_settings, _window("baseline", 600, 41), feedback_share=0.3, seed=41)
    before = len(versions())

    run = run_dag(dag_settings, "2026-04-02")

    assert run.returncode == 0, run.log[-3000:]
    assert "no_drift (no signal crossed its threshold" in run.report
    assert "no new version: no retraining needed" in run.report
    assert len(versions()) == before
    assert list((dag_settings.reports_dir / "drift").glob("*.html"))  # the evidence is kept even on quiet days
    watermark = win.load_watermark(win.watermark_path(dag_settings.airflow_dir))
    assert watermark.requests_until is not None  # these tickets are done


def test_drifted_window_registers_a_challenger_once_with_reports_on_disk(dag_settings, router_logs, run_dag, versions):
    router_logs(dag_settings, _window("new_product", 800, 42), feedback_share=0.3, seed=42)
    before = versions()

    run = run_dag(dag_settings, "2026-04-03")

    assert run.returncode == 0, run.log[-3000:]
    after = versions()
    assert len(after) == len(before) + 1
    client = registry.connect(dag_settings.tracking_uri)
    challenger = registry.version_for(client, dag_settings.model_name, registry.CHALLENGER)
    assert challenger.version == after[-1].version
    assert challenger.tags["run_key"] == "ticket_drift_retrain:2026-04-03T00:00:00+00:00"
    assert "drift (" in run.report and "new_vocabulary" in run.report
    assert f"v{challenger.version} registered" in run.report and "alias challenger" in run.report

    reports = dag_settings.reports_dir
    (html,) = (reports / "drift").glob("*.html")
    (js,) = (reports / "drift").glob("*.json")
    assert json.loads(js.read_text())["decision"]["retrain"] is True and html.stat().st_size > 10_000
    review = pd.read_csv(reports / "review_queue.csv")
    assert len(review) > 0 and {"text", "suggested_topic", "confidence"} <= set(review.columns)
    (drift_run,) = client.search_runs([client.get_experiment_by_name(dag_settings.experiment).experiment_id],
                                      filter_string=f"tags.dag_run_id = '{challenger.tags['dag_run_id']}' "
                                                    "and tags.kind = 'drift'")
    artifacts = {a.path for a in client.list_artifacts(drift_run.info.run_id, "report")}
    assert any(p.endswith(".md") for p in artifacts)

    # A failure after training (the watermark was not committed) re-runs the same logical date:
    win.watermark_path(dag_settings.airflow_dir).unlink()
    again = run_dag(dag_settings, "2026-04-03")
    assert again.returncode == 0, again.log[-3000:]
    assert len(versions()) == len(after)  # idempotent: the run key finds the version already registered
    assert "(already, same key)" in again.report


def test_tiny_window_skips_with_the_reason_and_keeps_the_watermark(dag_settings, router_logs, run_dag, versions):
    router_logs(dag_settings, _window("new_product", 50, 43), feedback_share=0.3, seed=43)
    before = len(versions())

    run = run_dag(dag_settings, "2026-04-04")

    assert run.returncode == 0, run.log[-3000:]
    assert "too_small (window too small: 50 tickets < min_window 200; waiting for more)" in run.report
    assert len(versions()) == before
    assert not win.watermark_path(dag_settings.airflow_dir).exists()  # the 50 tickets count towards the next window


def test_corrupt_log_rows_are_counted_and_skipped(dag_settings, router_logs, run_dag):
    router_logs(dag_settings, _window("baseline", 400, 44), feedback_share=0.3, seed=44)
    append_lines(shard_files(dag_settings.logs_dir, REQUESTS)[-1],
                 "only,three,fields\n",  # no checksum: a hand edit
                 "yesterday," + ",".join(["x"] * 17) + "\n",  # right shape, unreadable timestamp
                 "2026-04-01T09:00:00+00:00,req-torn,T-torn")  # a write cut short (no newline)
    (never_served,) = append_rows(dag_settings.logs_dir, FEEDBACK_COLUMNS,
                                  [["2026-04-01T10:00:00+00:00", "req-never-served", "billing", "agent-1"]])
    append_lines(never_served, "not,a,feedback,row,at,all\n")
    dag_settings.incoming_dir.mkdir(parents=True)
    (dag_settings.incoming_dir / "export.csv").write_text("body\nno text column here\n")

    run = run_dag(dag_settings, "2026-04-05")

    assert run.returncode == 0, run.log[-3000:]
    assert "| requests_malformed | 3 |" in run.report
    assert "| feedback_malformed | 1 |" in run.report
    assert "| feedback_unknown_request | 1 |" in run.report
    assert "`export.csv`: " in run.report and "missing required column 'text'" in run.report
    assert "| malformed | 5 |" in run.report
    assert "window 400 tickets" in run.report
