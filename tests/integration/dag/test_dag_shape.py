"""The DAG files as Airflow parses them (in a fresh interpreter with its own AIRFLOW_HOME): the schedule,
the task graph, retries, and that parsing loads none of the training stack."""

import json
import subprocess
import sys

import pytest

from ops import env as services
from ticket_ab.names import DAG_ID, EXPERIMENT_DAG_ID, REQUEST_LOG_ASSET, WATCH_DAG_ID
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
    assert dag_shape["dags"] == sorted([DAG_ID, EXPERIMENT_DAG_ID, WATCH_DAG_ID])


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


def test_task_graph_is_collect_check_decide_then_relabel_train_or_skip_and_compact_then_report(dag_shape):
    upstream = {task: set(info["upstream"]) for task, info in dag_shape["tasks"].items()}
    assert upstream == {
        "collect_window": set(),
        "check_drift": {"collect_window"},
        "decide": {"check_drift"},
        "relabel": {"decide", "collect_window", "check_drift"},
        "train_challenger": {"relabel", "collect_window", "check_drift"},
        "skip": {"decide"},
        "compact_logs": {"collect_window"},
        "report": {"relabel", "train_challenger", "skip", "collect_window", "check_drift", "compact_logs"},
    }
    assert dag_shape["tasks"]["decide"]["type"] == "_BranchPythonDecoratedOperator"
    assert dag_shape["tasks"]["report"]["trigger_rule"].endswith("NONE_FAILED_MIN_ONE_SUCCESS")


def test_only_tasks_that_talk_to_mlflow_retry_and_with_backoff(dag_shape):
    retrying = {t for t, info in dag_shape["tasks"].items() if info["retries"] > 0}
    assert retrying == {"check_drift", "train_challenger", "report"}
    assert all(dag_shape["tasks"][t]["backoff"] for t in retrying)


def test_dag_file_parses_without_importing_the_training_stack():
    """Airflow re-parses the DAG file every few minutes: parsing must not load PyCaret, Evidently or MLflow."""
    dag_file = str(DAG_FILE)
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('dag', {dag_file!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(sorted(m for m in ('pycaret', 'evidently', 'cleanlab', 'mlflow', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=services.REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
