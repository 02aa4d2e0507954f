"""`make stack` starts what docker compose starts, with the same commands and settings (read side by side)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from ops.cli import build_parser
from ops.ports import airflow_endpoint
from ops.stack import configdb, postgres, programs, run, secret_files
from ops.stack.topology import (
    AIRFLOW_SERVICES,
    CELERY,
    Paths,
    Secrets,
    SecretsError,
    airflow_command,
    airflow_env,
    bootstrap_command,
    cluster,
    describe,
    experiment_router_url,
    load_secrets,
    registry_init_command,
    replica_name,
    replica_settings,
)
from ticket_ab.settings import get_settings

REPO = Path(__file__).resolve().parents[3]
# chowns Docker volumes; checks .env's secrets for placeholders (natively they are generated); no Debian package
CONTAINER_ONLY = {"volumes-init", "secrets-init", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture
def settings(tmp_path):
    return get_settings(home=tmp_path / "home")


@pytest.fixture
def keys(settings) -> Secrets:
    return load_secrets(settings, Paths.of(settings))


def _native_services(settings) -> set[str]:
    described = set(describe(settings, Paths.of(settings)))
    return described | set(AIRFLOW_SERVICES) | {"airflow-init", "registry-init", "bootstrap"}


def test_native_stack_runs_every_compose_service_but_the_container_only_ones(compose, tmp_path):
    local = _native_services(get_settings(home=tmp_path))
    celery = _native_services(get_settings(home=tmp_path, stack={"executor": CELERY})) | {"airflow-worker"}
    assert local | celery == set(compose["services"]) - CONTAINER_ONLY
    assert celery - local == {"redis", "airflow-worker"}


def test_airflow_services_run_compose_commands(compose):
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        assert airflow_command(name)[2:] == ["airflow", *compose["services"][name]["command"]], name
    assert airflow_command("airflow-worker")[3:5] == compose["services"]["airflow-worker"]["command"]


def test_bootstrap_runs_the_compose_command(compose):
    command = compose["services"]["bootstrap"]["command"]
    assert bootstrap_command(int(command[-1]))[1:] == command[1:]
    assert build_parser().parse_args(["stack", "up"]).bootstrap_n == int(command[-1])


def test_airflow_env_sets_every_airflow_variable_compose_sets(compose, settings, keys):
    pg = cluster(settings, Paths.of(settings))
    pg.directory.mkdir(parents=True)
    pg.password_file.write_text("pw\n")
    env = airflow_env(settings, pg, keys)
    wanted = {name for name in compose["x-pipeline-env"] if name.startswith("AIRFLOW__")
              and not name.startswith("AIRFLOW__CELERY__")}  # set only for the Celery executor
    assert wanted - set(env) == set()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://ticketab:pw@127.0.0.1:")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{airflow_endpoint(settings).url}/execution/"


def test_celery_executor_points_the_workers_at_the_stack_redis(compose, tmp_path):
    settings = get_settings(home=tmp_path, stack={"executor": CELERY, "redis_port": 6390})
    pg = cluster(settings, Paths.of(settings))
    pg.directory.mkdir(parents=True)
    pg.password_file.write_text("pw\n")
    env = airflow_env(settings, pg, load_secrets(settings, Paths.of(settings)))
    assert env["AIRFLOW__CORE__EXECUTOR"] == CELERY
    assert {name for name in compose["x-pipeline-env"] if name.startswith("AIRFLOW__")} - set(env) == set()
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6390/0"


def test_replicas_listen_on_consecutive_ports_with_the_same_tokens(tmp_path, keys):
    settings = get_settings(home=tmp_path, router={"port": 9100}, stack={"replicas": 3})
    replicas = replica_settings(settings, keys)
    assert [r.router.port for r in replicas] == [9100, 9101, 9102]
    assert {r.router.feedback_token for r in replicas} == {keys.feedback_token}
    assert [replica_name(i) for i in range(3)] == ["router", "router-2", "router-3"]


def test_the_experiment_dag_changes_the_split_through_replica_one_unless_told_otherwise(tmp_path, keys):
    settings = get_settings(home=tmp_path, router={"port": 9100}, stack={"replicas": 3})
    assert experiment_router_url(settings, keys) == "http://127.0.0.1:9100"  # `router`, as its health check
    told = get_settings(home=tmp_path, rollout={"router_url": "http://lb.internal:8000"})
    assert experiment_router_url(told, keys) == "http://lb.internal:8000"


def test_the_task_runners_hold_what_compose_gives_its_task_runners(compose, tmp_path):
    """The variables only the task-running services get are the same natively and in compose (x-task-runner)."""
    settings = get_settings(home=tmp_path, alert={"urls": "json://127.0.0.1:9/hook"})
    native = programs.task_runner_env(settings, load_secrets(settings, Paths.of(settings)))
    assert set(native) == set(compose["x-task-runner"])
    assert native["MLFLOW_TRACKING_USERNAME"] == compose["x-task-runner"]["MLFLOW_TRACKING_USERNAME"] == "autopilot"


def test_replicas_share_the_config_database_as_its_least_privilege_role_and_score_with_a_client_token(tmp_path,
                                                                                                      keys):
    settings = get_settings(home=tmp_path, stack={"postgres_port": 6543})
    replicas = replica_settings(settings, keys)
    assert {r.router.config_store for r in replicas} == {
        f"postgresql://{configdb.ROLE}:{keys.config_password}@127.0.0.1:6543/{configdb.DATABASE}"}
    assert {r.router.client_token for r in replicas} == {keys.client_token}


def test_secrets_are_generated_once_private_and_kept(settings):
    paths = Paths.of(settings)
    first = load_secrets(settings, paths)
    assert load_secrets(settings, paths) == first
    assert paths.secrets.stat().st_mode & 0o777 == 0o600
    assert len(set(json.loads(paths.secrets.read_text()).values())) == len(Secrets.__annotations__)


def test_tokens_from_the_environment_win_over_kept_ones(tmp_path):
    settings = get_settings(home=tmp_path, router={"admin_token": "from-env"})
    assert load_secrets(settings, Paths.of(settings)).admin_token == "from-env"


def test_postgres_refuses_a_home_its_service_user_cannot_enter(tmp_path, monkeypatch):
    monkeypatch.setattr(postgres, "run_as", lambda: "nobody")
    monkeypatch.setattr(postgres.os, "chown", lambda *args: None)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    with pytest.raises(postgres.PostgresError, match="cannot enter"):
        postgres.initdb(postgres.Cluster(locked / "pg", 5432))


def test_stack_down_and_status_with_no_supervisord_running_stop_and_show_nothing(settings):
    assert run.down(settings) == []
    assert run.status(settings) == {}


def test_registry_init_runs_the_compose_command(compose):
    assert registry_init_command()[1:] == compose["services"]["registry-init"]["command"][1:]


@pytest.mark.parametrize("content", ['{"admin_token": "abc"', '["abc"]', '{"admin_token": ""}', '{"admin_token": 1}',
                                     ""])
def test_a_damaged_secrets_file_is_an_error_naming_it_and_is_never_replaced(settings, content):
    paths = Paths.of(settings)
    paths.root.mkdir(parents=True)
    paths.secrets.write_text(content)
    with pytest.raises(SecretsError, match=f"{paths.secrets} is damaged"):
        load_secrets(settings, paths)
    assert paths.secrets.read_text() == content


def test_secrets_added_since_the_file_was_written_are_generated_and_kept_ones_stay_in_a_private_file(settings):
    """A file from an older stack (fewer secrets, and once world-readable) keeps its values and becomes 0600."""
    paths = Paths.of(settings)
    paths.root.mkdir(parents=True)
    paths.secrets.write_text(json.dumps({"jwt_secret": "kept-jwt-secret", "admin_token": "kept-admin-token"}))
    paths.secrets.chmod(0o644)
    keys = load_secrets(settings, paths)
    assert (keys.jwt_secret, keys.admin_token) == ("kept-jwt-secret", "kept-admin-token")
    assert keys.registry_router_password and keys.registry_router_password != keys.registry_pipeline_password
    assert paths.secrets.stat().st_mode & 0o777 == 0o600
    assert json.loads(paths.secrets.read_text()) == asdict(keys)
    assert [p.name for p in paths.root.iterdir()] == ["secrets.json"]  # no temp file left behind


def test_the_secret_files_of_mlflow_and_airflow_are_private_and_airflow_reads_ours(settings, keys, tmp_path):
    paths = Paths.of(settings)
    secret_files.write_files(paths.registry_auth, paths.airflow_passwords, "postgresql+psycopg2://u:p@h:1/db",
                             keys.airflow_admin_password)
    for path in (paths.registry_auth, paths.airflow_passwords):
        assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert json.loads(paths.airflow_passwords.read_text()) == {"admin": keys.airflow_admin_password}
    pg = cluster(settings, paths)
    pg.directory.mkdir(parents=True)
    pg.password_file.write_text("pw\n")
    env = airflow_env(settings, pg, keys)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(paths.airflow_passwords)
