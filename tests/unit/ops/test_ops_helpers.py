"""What operations keep of their own besides supervisord: a taken port said in one line, waits with a
deadline that end early when waiting cannot help, and child environments without other processes' secrets."""

from __future__ import annotations

import time

import pytest

from ops.env import NOT_INHERITED, child_env, inherited, secret_names
from ops.health import ServiceError, log_tail, wait_until
from ops.ports import PortInUseError, free_port, mlflow_endpoint, port_taken, router_endpoint
from ticket_ab.settings import get_settings


def test_a_taken_port_is_refused_in_one_line_naming_the_variable_that_moves_it(tmp_path, taken_port):
    settings = get_settings(home=tmp_path, router={"port": taken_port})
    assert port_taken("127.0.0.1", taken_port)
    with pytest.raises(PortInUseError, match=f"^port {taken_port} \\(router\\) .*set TICKET_AB_PORT to another port$"):
        router_endpoint(settings).ensure_free()


def test_a_free_port_is_free_and_its_endpoint_starts():
    port = free_port()
    assert not port_taken("127.0.0.1", port)
    mlflow_endpoint(get_settings(mlflow_port=port)).ensure_free()


def test_a_wait_returns_what_the_check_found():
    answers = iter([None, 0, {"ready": True}])
    assert wait_until(lambda: next(answers), 5, "it answers", interval_s=0) == {"ready": True}


def test_a_wait_ends_at_its_deadline_naming_what_it_waited_for():
    started = time.monotonic()
    with pytest.raises(ServiceError, match="gave up after 0 s waiting until the router answers"):
        wait_until(lambda: False, 0.2, "the router answers", interval_s=0.05)
    assert time.monotonic() - started < 2


def test_a_wait_ends_at_once_when_another_check_says_it_cannot_succeed():
    started = time.monotonic()
    with pytest.raises(ServiceError, match="mlflow exited: FATAL \\(while waiting until mlflow answers\\)"):
        wait_until(lambda: False, 60, "mlflow answers", failed=lambda: "mlflow exited: FATAL", interval_s=0.05)
    assert time.monotonic() - started < 2


def test_a_log_tail_ends_an_error_message_and_is_empty_without_a_log(tmp_path):
    log = tmp_path / "svc.log"
    assert log_tail(log) == ""
    log.write_text("\n".join(f"line {i}" for i in range(50)))
    assert log_tail(log, lines=2) == f"; last lines of {log}:\nline 48\nline 49"


def test_children_inherit_no_secret_unless_it_is_their_own(monkeypatch, tmp_path):
    monkeypatch.setenv("TICKET_AB_ADMIN_TOKEN", "admin-secret")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "fernet-secret")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    settings = get_settings(home=tmp_path)
    assert {"TICKET_AB_ADMIN_TOKEN", "AIRFLOW__CORE__FERNET_KEY"} <= secret_names(settings)
    base = inherited(settings)
    assert not {"TICKET_AB_ADMIN_TOKEN", "AIRFLOW__CORE__FERNET_KEY", *NOT_INHERITED} & set(base)
    assert "TICKET_AB_ADMIN_TOKEN" not in child_env(settings)
    assert child_env(settings, secrets=True)["TICKET_AB_ADMIN_TOKEN"] == "admin-secret"
    assert "AIRFLOW__CORE__FERNET_KEY" not in child_env(settings, secrets=True)  # the router's secrets only
    assert child_env(settings)["TICKET_AB_HOME"] == str(settings.home)
