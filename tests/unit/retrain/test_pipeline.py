import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from logfiles import append_rows

from ops import dagrun
from ops import launch as services
from retrain.tasks import check, collect, report
from retrain.tasks import window as win
from retrain.tasks.results import Checked, Collected, Relabelled, Trained
from retrain.tasks.runs import run_dir, run_key, run_slug
from ticket_ab.names import DAG_ID, REQUEST_LOG_ASSET, WATCH_DAG_ID
from ticket_ab.requestlog import REQUEST_COLUMNS
from ticket_ab.settings import get_settings

DAG_FILE = services.REPO / "airflow" / "dags" / "ticket_drift_retrain.py"
_INSPECT = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={folder!r}, include_examples=False)
dag = bag.dags.get("ticket_drift_retrain")
watch = bag.dags.get("ticket_log_watch")
print(json.dumps({{
    "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
    "dags": sorted(bag.dags),
    "timetable": type(dag.timetable).__name__ if dag else None,
    "schedule": dag.timetable.timetable.expression if dag else None,
    "assets": sorted(a.name for a in dag.timetable.asset_condition.objects) if dag else None,
    "watch_every_s": watch.timetable.delta.total_seconds() if watch else None,
    "watch_outlets": sorted(o.name for t in watch.tasks for o in t.outlets) if watch else None,
    "watch_catchup": watch.catchup if watch else None,
    "catchup": dag.catchup if dag else None,
    "max_active_runs": dag.max_active_runs if dag else None,
    "tasks": {{t.task_id: {{"upstream": sorted(t.upstream_task_ids), "trigger_rule": str(t.trigger_rule),
                            "retries": t.retries, "backoff": bool(t.retry_exponential_backoff),
                            "type": type(t).__name__}} for t in (dag.tasks if dag else [])}},
}}))
"""


@pytest.fixture(scope="module")
def dag_shape(tmp_path_factory):
    """The DAG as Airflow parses it, in a subprocess with its own AIRFLOW_HOME (import writes a config)."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = services.python_env({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                               "TICKET_AB_SCHEDULE": "@daily"})
    result = subprocess.run([sys.executable, "-c", _INSPECT.format(folder=str(DAG_FILE.parent))], env=env,
                            capture_output=True, text=True, timeout=120, cwd=home)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dag_files_import_without_errors(dag_shape):
    assert dag_shape["errors"] == {}
    assert dag_shape["dags"] == [DAG_ID, WATCH_DAG_ID]


def test_dag_runs_on_the_request_log_asset_or_daily_without_catchup_one_run_at_a_time(dag_shape):
    assert dag_shape["timetable"] == "AssetOrTimeSchedule"
    assert dag_shape["schedule"] == "@daily"
    assert dag_shape["assets"] == [REQUEST_LOG_ASSET]
    assert dag_shape["catchup"] is False
    assert dag_shape["max_active_runs"] == 1


def test_the_log_watcher_emits_the_asset_the_dag_waits_for_every_watch_interval(dag_shape):
    assert dag_shape["watch_outlets"] == [REQUEST_LOG_ASSET]
    assert dag_shape["watch_every_s"] == get_settings().pipeline.watch_interval_s
    assert dag_shape["watch_catchup"] is False


def test_task_graph_is_collect_check_decide_then_relabel_train_or_skip_then_report(dag_shape):
    upstream = {task: set(info["upstream"]) for task, info in dag_shape["tasks"].items()}
    assert upstream == {
        "collect_window": set(),
        "check_drift": {"collect_window"},
        "decide": {"check_drift"},
        "relabel": {"decide", "collect_window", "check_drift"},
        "train_challenger": {"relabel", "collect_window", "check_drift"},
        "skip": {"decide"},
        "report": {"train_challenger", "skip", "collect_window", "check_drift"},
    }
    assert dag_shape["tasks"]["decide"]["type"] == "_BranchPythonDecoratedOperator"
    assert dag_shape["tasks"]["report"]["trigger_rule"].endswith("NONE_FAILED_MIN_ONE_SUCCESS")


def test_only_tasks_that_talk_to_mlflow_retry_and_with_backoff(dag_shape):
    retrying = {t for t, info in dag_shape["tasks"].items() if info["retries"] > 0}
    assert retrying == {"check_drift", "train_challenger", "report"}
    assert all(dag_shape["tasks"][t]["backoff"] for t in retrying)


def test_airflow_folder_is_not_a_package_that_would_shadow_airflow():
    assert not (services.REPO / "airflow" / "__init__.py").exists()
    assert not (services.REPO / "airflow" / "dags" / "__init__.py").exists()


# ---- pure helpers ------------------------------------------------------------------------------

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


@pytest.mark.parametrize("result", [
    _checked(),
    Trained(key="k", version="4", passed=True, metrics={"macro_f1": 0.91}),
    Relabelled(train_path="a", holdout_path="b", review_path="c", stats={"gold": 3}),
])
def test_task_results_travel_through_xcom_as_json_and_come_back_equal(result):
    assert type(result).from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_relabel_and_train_results_are_kept_in_the_run_directory_for_the_report(tmp_path):
    trained = Trained(key="k", why="few gold")
    assert Trained.load(tmp_path) is None  # the task was skipped
    trained.save(tmp_path)
    assert Trained.load(tmp_path) == trained


def test_collect_window_saves_the_window_and_clears_an_earlier_attempts_results(tmp_path):
    settings = get_settings(home=tmp_path / "home")
    rows = []
    for i in range(3):
        values = {c: "" for c in REQUEST_COLUMNS}
        values.update(timestamp=f"2026-03-01T10:00:0{i}+00:00", request_id=f"r{i}", topic="email",
                      text=f"mail stuck {i}", split_b="0.5", confidence="0.8", latency_ms="1")
        rows.append([values[c] for c in REQUEST_COLUMNS])
    append_rows(settings.logs_dir, REQUEST_COLUMNS, rows)
    Trained(key="k", version="1").save(run_dir(settings, "manual__1"))

    collected = collect.collect_window(settings, "manual__1")
    assert Trained.load(collected.directory) is None
    assert collected.rows == 3
    assert pd.read_parquet(collected.window_path)["request_id"].tolist() == ["r0", "r1", "r2"]
    assert collected.next_watermark["requests_until"] == "2026-03-01T10:00:02+00:00"
    assert Collected.from_dict(json.loads(json.dumps(collected.to_dict()))) == collected
    assert win.load_watermark(win.watermark_path(settings.airflow_dir)) == win.Watermark()  # not committed yet


def test_a_tiny_window_is_decided_without_contacting_mlflow(tmp_path):
    settings = get_settings(home=tmp_path, tracking_uri="http://127.0.0.1:9", drift={"min_window": 200})
    checked = check.check_drift(settings, _collected(rows=12))
    assert checked.retrain is False and checked.status == "too_small"
    assert checked.reasons == ["window too small: 12 tickets < min_window 200; waiting for more"]


# ---- dagrun ------------------------------------------------------------------------------------

def test_airflow_env_points_at_our_home_dags_and_settings(tmp_path):
    settings = get_settings(home=tmp_path, model_name="m-1", tracking_uri="http://127.0.0.1:5999")
    env = dagrun.airflow_env(settings)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAG_FILE.parent)
    assert (env["TICKET_AB_HOME"], env["TICKET_AB_MODEL_NAME"], env["MLFLOW_TRACKING_URI"]) == (
        str(tmp_path), "m-1", "http://127.0.0.1:5999")
    assert str(services.REPO) not in env.get("PYTHONPATH", "")  # the project is installed: no path edits
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)  # standalone spawns `airflow` from PATH


def test_standalone_is_bounded_to_four_slots_on_localhost(tmp_path):
    env = dagrun.standalone_env(get_settings(home=tmp_path))
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert (env["AIRFLOW__API__HOST"], env["AIRFLOW__API__PORT"]) == ("127.0.0.1", "8080")


def test_standalone_refuses_a_taken_ui_port_before_touching_the_db(tmp_path, taken_port):
    settings = get_settings(home=tmp_path, airflow_port=taken_port)
    with pytest.raises(services.PortInUseError, match=f"port {taken_port} .*TICKET_AB_AIRFLOW_PORT"):
        dagrun.standalone(settings)
    assert not settings.airflow_dir.exists()


def test_db_migrate_runs_only_when_the_marker_is_missing_or_stale(tmp_path, monkeypatch):
    settings = get_settings(home=tmp_path)
    calls = []
    monkeypatch.setattr(dagrun.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(
        cmd, 0))
    assert dagrun.ensure_db(settings) is True
    assert dagrun.ensure_db(settings.model_copy()) is False
    (settings.airflow_dir / dagrun.MIGRATED_MARKER).write_text("2.0.0\n")
    assert dagrun.ensure_db(settings) is True
    assert calls == [[sys.executable, "-m", "airflow", "db", "migrate"]] * 2
