"""The process launcher: a taken port is one clear line, waits end with a reason, stop leaves nothing behind."""

import sys
import time

import psutil
import pytest

from ops import launch
from ticket_ab.settings import get_settings


@pytest.mark.parametrize(("endpoint", "overrides", "what", "variable"), [
    (launch.mlflow_endpoint, lambda port: {"mlflow_port": port}, "MLflow", "TICKET_AB_MLFLOW_PORT"),
    (launch.router_endpoint, lambda port: {"router": {"port": port}}, "router", "TICKET_AB_PORT"),
    (launch.airflow_endpoint, lambda port: {"airflow_port": port}, "Airflow UI", "TICKET_AB_AIRFLOW_PORT"),
])
def test_a_taken_port_is_one_line_naming_the_port_and_the_variable_that_moves_it(
        tmp_path, taken_port, endpoint, overrides, what, variable):
    settings = get_settings(home=tmp_path, **overrides(taken_port))
    with pytest.raises(launch.PortInUseError) as refused:
        endpoint(settings).ensure_free()
    assert str(refused.value) == (f"port {taken_port} ({what}) is already in use on 127.0.0.1; "
                                  f"set {variable} to another port")


def test_a_port_nobody_listens_on_is_free(tmp_path):
    launch.mlflow_endpoint(get_settings(home=tmp_path, mlflow_port=launch.free_port())).ensure_free()


def test_start_mlflow_refuses_a_taken_port_before_starting_anything(tmp_path, taken_port):
    settings = get_settings(home=tmp_path, mlflow_port=taken_port)
    with pytest.raises(launch.PortInUseError, match=f"port {taken_port} \\(MLflow\\)"):
        launch.start_mlflow(settings)
    assert not settings.mlflow_dir.exists()


def test_start_mlflow_refuses_a_tracking_uri_that_points_elsewhere(tmp_path):
    settings = get_settings(home=tmp_path, mlflow_port=5999, tracking_uri="http://mlflow.internal:5000")
    with pytest.raises(launch.ServiceError, match="MLFLOW_TRACKING_URI is http://mlflow.internal:5000.*5999"):
        launch.start_mlflow(settings)


def test_mlflow_command_serves_the_settings_home_on_their_port(tmp_path):
    command = launch.mlflow_command(get_settings(home=tmp_path, mlflow_port=5123))
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def test_child_env_recreates_the_settings_and_shares_tokens_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "parent-metrics"))
    settings = get_settings(home=tmp_path, model_name="m-7", router={"port": 8123, "admin_token": "s3cret"})
    env = launch.child_env(settings, {"EXTRA": "1"})
    assert (env["TICKET_AB_HOME"], env["TICKET_AB_MODEL_NAME"], env["TICKET_AB_PORT"]) == (str(tmp_path), "m-7", "8123")
    assert env["EXTRA"] == "1"
    assert "TICKET_AB_ADMIN_TOKEN" not in env
    assert "PROMETHEUS_MULTIPROC_DIR" not in env  # a router keeps its metrics under its own home
    assert launch.child_env(settings, secrets=True)["TICKET_AB_ADMIN_TOKEN"] == "s3cret"


def test_wait_until_returns_the_first_truthy_answer():
    answers = iter([None, 0, {"ready": True}])
    assert launch.wait_until(lambda: next(answers), 5, "ready", interval_s=0) == {"ready": True}


def test_wait_until_gives_up_at_the_deadline_saying_what_it_waited_for():
    with pytest.raises(launch.ServiceError, match="gave up after 0 s waiting until the moon is blue"):
        launch.wait_until(lambda: False, 0.05, "the moon is blue", interval_s=0.01)


def test_wait_until_fails_fast_when_the_service_dies_and_shows_its_log(tmp_path):
    service = launch.start("crasher", [sys.executable, "-c", "print('cannot bind'); raise SystemExit(3)"],
                           tmp_path / "crasher.log")
    started = time.monotonic()
    with pytest.raises(launch.ServiceError, match=r"crasher exited with code 3 before it answers(.|\n)*cannot bind"):
        launch.wait_until(lambda: False, 60, "it answers", service)
    assert time.monotonic() - started < 30


def test_stop_ends_the_process_and_its_children(tmp_path):
    spawner = ("import subprocess, sys, time; "
               "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
               "print(child.pid, flush=True); time.sleep(120)")
    service = launch.start("spawner", [sys.executable, "-c", spawner], tmp_path / "spawner.log")
    child_pid = int(launch.wait_until(lambda: service.log.read_text().strip(), 30, "the child is started", service))
    launch.stop(service, timeout_s=5)
    assert service.exited()
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
