"""The stack as supervisord programs: the config supervisord's own parser reads, each program's policy,
and each process's secrets given to it alone (never on a command line, never to another process)."""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from ops.env import inherited, own_part
from ops.manager.program import REAPER, Program, render, write
from ops.servers import AUTH_APP
from ops.stack import postgres, programs
from ops.stack.accounts import AUTOPILOT, CREDENTIALS
from ops.stack.topology import Paths, cluster, load_secrets
from ticket_ab.durable import UMASK
from ticket_ab.settings import env_names, get_settings

LONG_RUNNING = {"postgres", "mlflow", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                "airflow-triggerer", "router", "router-2", "prometheus"}
ROUTERS = {"router", "router-2"}
AIRFLOW = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
NAMES = env_names()
ADMIN_TOKEN, ALERT_URLS = NAMES["router.admin_token"], NAMES["alert.urls"]
ROLLOUT_ROUTER_URL = NAMES["rollout.router_url"]


def _stack(tmp_path, **overrides):
    """The stack's programs for a home under tmp_path (settings `overrides`), with a known PostgreSQL password."""
    settings = get_settings(home=tmp_path / "home", **overrides)
    paths = Paths.of(settings)
    pg = cluster(settings, paths)
    pg.directory.mkdir(parents=True)
    pg.password_file.write_text("pg-password-secret\n")
    paths.logs.mkdir(parents=True)  # `stack up` makes it before supervisord reads the config
    keys = load_secrets(settings, paths)
    described = programs.programs(settings, paths, keys, pg, tmp_path / "prometheus.yml", bootstrap_n=2000)
    return settings, paths, keys, pg, {program.name: program for program in described}


@pytest.fixture
def stack(tmp_path):
    return _stack(tmp_path)


def _parsed(path: Path) -> dict:
    """The programs as supervisord itself reads the config file (its own parser, in this process)."""
    options = ServerOptions()
    options.configfile = str(path)
    options.process_config(do_usage=False)
    return {config.name: config for group in options.process_group_configs for config in group.process_configs}


def _written(stack) -> Path:
    _, paths, _, _, described = stack
    return write(render(list(described.values()), paths.supervisor), paths.supervisor)


def test_supervisord_reads_one_program_per_service_plus_the_reaper(stack):
    *_, described = stack
    parsed = _parsed(_written(stack))
    assert set(parsed) == set(described) | {REAPER}
    for name, program in described.items():
        assert parsed[name].command == shlex.join(program.command)
        assert (parsed[name].environment or {}) == program.environment
        assert (parsed[name].killasgroup, parsed[name].stopasgroup) == (program.killasgroup, program.stopasgroup)


def test_the_config_is_readable_by_its_owner_only_in_a_private_directory(stack):
    paths = stack[1]
    path = _written(stack)
    assert (os.stat(path).st_mode & 0o777, os.stat(paths.supervisor).st_mode & 0o777) == (0o600, 0o700)
    assert "chmod=0700" in path.read_text() and "[inet_http_server]" not in path.read_text()


def test_every_program_creates_files_no_other_user_can_read(stack):
    parsed = _parsed(_written(stack))
    assert {name: config.umask for name, config in parsed.items() if name != REAPER} == {
        name: UMASK for name in parsed if name != REAPER}
    assert UMASK & 0o007 == 0o007


def test_long_running_services_restart_and_one_shots_do_not(stack):
    parsed = _parsed(_written(stack))
    assert {name for name, config in parsed.items()
            if config.autorestart is RestartUnconditionally and name != REAPER} == LONG_RUNNING
    assert {name: (config.autorestart, config.startsecs) for name, config in parsed.items()
            if name in programs.ONE_SHOT} == {name: (False, 0) for name in programs.ONE_SHOT}


def test_postgres_runs_as_its_own_account_when_we_are_root_and_stops_fast(stack):
    *_, described = stack
    assert described["postgres"].user == (postgres.SERVICE_USER if os.geteuid() == 0 else None)
    assert described["postgres"].stopsignal == "INT"  # PostgreSQL's fast shutdown
    assert {name for name, p in described.items() if p.user} <= {"postgres"}


def test_no_secret_is_on_any_command_line(stack):
    settings, _, keys, pg, described = stack
    secrets = {*asdict(keys).values(), pg.password()}
    for program in described.values():
        line = " ".join(program.command)
        assert not [s for s in secrets if s in line], f"{program.name} has a secret on its command line"


def test_each_process_gets_only_its_own_secrets(stack):
    settings, _, keys, pg, described = stack
    owners = {keys.admin_token: ROUTERS | {"airflow-scheduler"},  # the experiment DAG changes the split with it
              keys.feedback_token: ROUTERS, keys.customer_key: ROUTERS,
              keys.client_token: ROUTERS, keys.config_password: ROUTERS,
              keys.jwt_secret: AIRFLOW, keys.api_secret_key: AIRFLOW, keys.fernet_key: AIRFLOW,
              pg.password(): AIRFLOW | {"mlflow"}}
    for secret, wanted in owners.items():
        holders = {name for name, p in described.items() if any(secret in value for value in p.environment.values())}
        assert holders == wanted, f"a secret reaches {sorted(holders)} instead of {sorted(wanted)}"
    assert "pg-password-secret" in described["mlflow"].environment["MLFLOW_BACKEND_STORE_URI"]


def test_each_registry_credential_reaches_only_the_process_that_acts_with_it(stack):
    """The routers act as `router`, the task-running scheduler as `autopilot` (it runs both DAGs' tasks), the
    bootstrap as `operator`, `registry-init` as the admin (and sets every password); `pipeline` and `promoter`
    are for people, cron and CI, never a program of the stack."""
    _, paths, keys, _, described = stack
    owners = {keys.registry_router_password: ROUTERS | {"registry-init"},
              keys.registry_pipeline_password: {"registry-init"},
              keys.registry_autopilot_password: {"airflow-scheduler", "registry-init"},
              keys.registry_operator_password: {"bootstrap", "registry-init"},
              keys.registry_promoter_password: {"registry-init"},
              keys.registry_admin_password: {"mlflow", "registry-init"},
              keys.mlflow_secret_key: {"mlflow"}, keys.airflow_admin_password: set()}
    for secret, wanted in owners.items():
        holders = {name for name, p in described.items() if any(secret in value for value in p.environment.values())}
        assert holders == wanted, f"a secret reaches {sorted(holders)} instead of {sorted(wanted)}"
    users = {name: p.environment.get("MLFLOW_TRACKING_USERNAME") for name, p in described.items()}
    assert {name: user for name, user in users.items() if user} == {
        "router": "router", "router-2": "router", "airflow-scheduler": "autopilot", "bootstrap": "operator",
        "registry-init": "admin"}
    mlflow = described["mlflow"]
    assert mlflow.command[mlflow.command.index("--app-name") + 1] == AUTH_APP
    assert mlflow.environment["MLFLOW_AUTH_CONFIG_PATH"] == str(paths.registry_auth)


def test_with_celery_the_worker_runs_the_tasks_and_holds_their_secrets_instead_of_the_scheduler(tmp_path):
    _, _, keys, _, described = _stack(tmp_path, stack={"executor": "CeleryExecutor"})
    acting = {name for name, p in described.items() if p.environment.get("MLFLOW_TRACKING_USERNAME") == "autopilot"}
    assert acting == {"airflow-worker"}
    holders = {name for name, p in described.items() if keys.admin_token in p.environment.values()}
    assert holders == ROUTERS | {"airflow-worker"}
    assert described["airflow-scheduler"].environment.get(ROLLOUT_ROUTER_URL, "") == ""


def test_only_the_task_runner_holds_what_the_experiment_dag_acts_with(tmp_path):
    """The scheduler (LocalExecutor) changes the split through replica 1 with the stack's admin token, moves
    aliases as `autopilot` and sends the alerts; the API server, DAG processor and triggerer parse or serve
    the DAGs and hold none of it, the routers no alert URL, supervisord nothing."""
    alerts = "json://127.0.0.1:9/hook?token=alert-secret-token"
    settings, _, keys, _, described = _stack(tmp_path, alert={"urls": alerts}, router={"port": 9300})
    runner = described["airflow-scheduler"].environment
    assert runner[ROLLOUT_ROUTER_URL] == "http://127.0.0.1:9300"  # replica 1, `router`
    assert (runner[ADMIN_TOKEN], runner[ALERT_URLS]) == (keys.admin_token, alerts)
    assert runner["MLFLOW_TRACKING_USERNAME"] == AUTOPILOT.name
    for name in ("airflow-apiserver", "airflow-dag-processor", "airflow-triggerer", "airflow-init"):
        env = described[name].environment
        assert not {ADMIN_TOKEN, ALERT_URLS, *CREDENTIALS} & set(env), name
        assert env.get(ROLLOUT_ROUTER_URL, "") == "", name
    assert {name for name, p in described.items() if alerts in p.environment.values()} == {"airflow-scheduler"}
    assert not [v for v in inherited(settings).values() if alerts in v or keys.admin_token in v]


def test_an_explicit_rollout_router_url_is_kept(tmp_path):
    *_, described = _stack(tmp_path, rollout={"router_url": "http://10.0.0.5:8000"})
    assert described["airflow-scheduler"].environment[ROLLOUT_ROUTER_URL] == "http://10.0.0.5:8000"


def test_supervisord_itself_runs_without_any_secret(stack):
    settings, _, keys, pg, _ = stack
    base = inherited(settings)
    assert not [v for v in base.values() for s in (*asdict(keys).values(), pg.password()) if s in v]


def test_a_program_cannot_silently_drop_what_supervisord_passes_on():
    with pytest.raises(ValueError, match="cannot drop"):
        own_part({"A": "1"}, {"A": "1", "B": "2"})
    assert own_part({"A": "1", "B": "3", "C": "4"}, {"A": "1", "B": "2"}) == {"B": "3", "C": "4"}


@pytest.mark.parametrize("value", ["line\nbreak", "comment ;here", "hash #here"])
def test_a_value_supervisord_would_misread_is_refused_with_the_program_named(tmp_path, value):
    program = Program("svc", ["run"], tmp_path, tmp_path / "svc.log", {"SETTING": value})
    with pytest.raises(ValueError, match="svc"):
        render([program], tmp_path)


def test_percent_signs_reach_the_program_as_written(tmp_path):
    program = Program("svc", ["run", "--rate=5%"], tmp_path, tmp_path / "svc.log", {"SETTING": "50%"})
    parsed = _parsed(write(render([program], tmp_path / "sup"), tmp_path / "sup"))
    assert parsed["svc"].environment == {"SETTING": "50%"} and parsed["svc"].command.endswith("--rate=5%")
