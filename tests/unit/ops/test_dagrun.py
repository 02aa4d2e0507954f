"""`make pipeline` and `make airflow`: the environment every local `airflow` process gets, and the migration."""

import subprocess
import sys
from pathlib import Path

import pytest

from ops import dagrun
from ops import env as services
from ops.ports import PortInUseError
from ticket_ab.settings import get_settings


def test_airflow_env_points_at_our_home_dags_and_settings(tmp_path):
    settings = get_settings(home=tmp_path, model_name="m-1", tracking_uri="http://127.0.0.1:5999")
    env = dagrun.airflow_env(settings)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(dagrun.DAGS_FOLDER)
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
    with pytest.raises(PortInUseError, match=f"port {taken_port} .*TICKET_AB_AIRFLOW_PORT"):
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
