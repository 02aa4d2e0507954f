"""docker compose is the production path and no Docker engine runs here: check it by reading it.

The file is validated against the Compose Specification's JSON schema (vendored by check-jsonschema),
and the rules a reader would otherwise have to verify by running it are checked here: who owns which
volume, what waits for what, and that every variable is one the code or compose really reads.
"""

import configparser
import importlib.util
import json
import re
from pathlib import Path

import mlflow.environment_variables
import pytest
import yaml
from check_jsonschema.cli.main_command import main as check_jsonschema_main
from click.testing import CliRunner, Result
from compose_file import COMPOSE, GROUP_WRITABLE, OWN, load, writable_mounts

from ops.servers import AUTH_APP
from ops.stack import secret_files
from ops.stack.accounts import ACCOUNTS, ADMIN, AUTOPILOT, CREDENTIALS, OPERATOR, ROUTER
from ticket_ab.settings import describe, env_names, get_settings

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pycaret", "apache-airflow", "evidently", "cleanlab", "lightgbm")
ROUTERS = ("router", "router-2")
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")
AIRFLOW = (*AIRFLOW_SERVICES, "bootstrap")
# The registry account each service acts as; every other service has no registry credentials at all.
REGISTRY_ACCOUNTS = {"router": ROUTER.name, "router-2": ROUTER.name, "airflow-scheduler": AUTOPILOT.name,
                     "airflow-worker": AUTOPILOT.name, "bootstrap": OPERATOR.name, "registry-init": ADMIN}
# The services that run the DAGs' tasks, and what only they hold beyond the one Airflow environment: the registry
# account, and for the experiment DAG the admin token, the router it posts the split to and the alerts' URLs.
TASK_RUNNERS = ("airflow-scheduler", "airflow-worker")
NAMES = env_names()
TASK_RUNNER_ONLY = {*CREDENTIALS, NAMES["router.admin_token"], NAMES["rollout.router_url"], NAMES["alert.urls"]}
NEEDS_CHAMPION = ("router", "router-2", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                  "airflow-worker")
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`; `$$` is compose's escaped dollar.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _validate(path: Path) -> Result:
    """check-jsonschema against its vendored Compose Specification schema, run in this process (click's runner)."""
    return CliRunner().invoke(check_jsonschema_main, ["--builtin-schema", "vendor.compose-spec", str(path)])


def _dependencies(service: dict) -> dict[str, str]:
    """depends_on as {service: condition} (the short list form means service_started)."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def _waits_for(compose: dict, name: str, target: str, condition: str) -> bool:
    """Whether `name` starts only after `target` reached `condition`, directly or through its dependencies."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        for dep, cond in _dependencies(compose["services"][current]).items():
            if dep == target and cond == condition:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


def _same(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def test_compose_file_is_valid_under_the_compose_specification_schema():
    result = _validate(COMPOSE)
    assert result.exit_code == 0, result.output


def test_the_schema_check_rejects_a_misspelled_service_key(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("\n  read_only: true\n", "\n  readonly: true\n", 1))
    result = _validate(broken)
    assert result.exit_code != 0 and "readonly" in result.output


def test_every_service_has_an_image_or_a_build_with_an_existing_dockerfile(compose):
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            assert (REPO / service["build"]["dockerfile"]).is_file(), name


def _mlflows_own() -> set[str]:
    """The variables MLflow itself reads: its client's and server's settings, and the `envvar=` of its CLI's
    options (read from its source: importing `mlflow.cli` costs seconds in every test worker)."""
    own = {v.name for v in vars(mlflow.environment_variables).values()
           if isinstance(v, mlflow.environment_variables._EnvironmentVariable)}
    cli = Path(importlib.util.find_spec("mlflow.cli").origin).read_text()
    return own | set(re.findall(r'envvar="(MLFLOW_[A-Z0-9_]+)"', cli))


def test_compose_variables_are_settings_fields_or_mlflows_own(compose):
    """TICKET_AB_* must be a setting; MLFLOW_* a setting or a variable MLflow itself reads (the server's store
    URI and auth config, the client's credentials), so a misspelt one cannot be silently ignored."""
    known, mlflows = set(env_names().values()), _mlflows_own()
    assert {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_TRACKING_PASSWORD"} <= mlflows
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for var in env:
            if var.startswith("TICKET_AB_"):
                assert var in known, f"{name}: {var} is not read by ticket_ab/settings.py"
            if var.startswith("MLFLOW_"):
                assert var in known | mlflows, f"{name}: {var} is neither a setting nor read by MLflow"


def test_compose_defaults_are_the_settings_defaults():
    """A default is stated once, in settings.py: compose's `${TICKET_AB_X:-default}` must repeat it exactly."""
    defaults = {row["variable"].strip("`"): row["default"].strip("`").replace("(none)", "") for row in describe()}
    fallbacks = [(name, value) for name, kind, value in VARIABLE.findall(COMPOSE.read_text())
                 if kind == "-" and name.startswith("TICKET_AB_")]
    assert fallbacks
    for name, value in fallbacks:
        assert name in defaults, f"{name} is not a setting"
        assert _same(value, defaults[name]), f"{name}: compose says {value}, settings say {defaults[name]}"


def test_every_variable_compose_reads_is_in_env_example_and_every_example_variable_is_read():
    read = {name for name, _, _ in VARIABLE.findall(COMPOSE.read_text())}
    defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), flags=re.M))
    assert read - defined == set(), f"read by compose, missing from .env.example: {read - defined}"
    assert defined - read == set(), f"in .env.example, never read by compose: {defined - read}"


def test_every_required_secret_is_in_env_example():
    required = {name for name, kind, _ in VARIABLE.findall(COMPOSE.read_text()) if kind == "?"}
    defined = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), flags=re.M))
    assert required and required <= defined, required - defined


def test_routers_are_two_replicas_with_one_environment_and_their_own_host_ports(compose):
    routers = [compose["services"][name] for name in ROUTERS]
    assert routers[0]["environment"] == routers[1]["environment"]
    port = routers[0]["environment"]["TICKET_AB_PORT"]
    assert [r["ports"] for r in routers] == [[f"127.0.0.1:8000:{port}"], [f"127.0.0.1:8001:{port}"]]
    assert routers[0]["environment"]["TICKET_AB_HOST"] == "0.0.0.0"
    assert routers[0]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert get_settings().router.port == int(port)


def test_replicas_share_the_request_log_but_not_their_state(compose):
    """Log files are per worker process, so writers never share one; gunicorn's control socket and metrics are not."""
    mounts = [writable_mounts(compose["services"][name]) for name in ROUTERS]
    by_path = [{path: volume for volume, path in m.items()} for m in mounts]
    assert by_path[0]["/data/logs"] == by_path[1]["/data/logs"]
    assert by_path[0]["/data/router"] != by_path[1]["/data/router"]


def test_prometheus_scrapes_every_router_replica(compose):
    config = yaml.safe_load((REPO / "router" / "monitoring" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:{compose['services'][name]['environment']['TICKET_AB_PORT']}" for name in ROUTERS}


def test_prometheus_finds_its_rule_files_where_compose_mounts_them(compose):
    mounted = {Path(c["target"]) for c in compose["services"]["prometheus"]["configs"]}
    config_path = Path("/etc/prometheus/prometheus.yml")
    assert config_path in mounted
    config = yaml.safe_load((REPO / "router" / "monitoring" / "prometheus.yml").read_text())
    assert config["rule_files"] and all(config_path.parent / rule in mounted for rule in config["rule_files"])


def test_every_config_file_compose_mounts_exists(compose):
    files = [spec["file"] for spec in compose["configs"].values() if "file" in spec]
    assert files and all((REPO / f).is_file() for f in files), files


def test_pipeline_talks_to_the_compose_mlflow(compose):
    mlflow = compose["services"]["mlflow"]
    assert "--port=5000" in mlflow["command"]
    for name in AIRFLOW:
        assert compose["services"][name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def _shared(env: dict) -> dict:
    return {name: value for name, value in env.items() if name not in TASK_RUNNER_ONLY}


def test_airflow_services_share_one_environment_with_the_execution_api_and_jwt_secret(compose):
    """One environment; only the services that run the DAGs' tasks add their own (`TASK_RUNNER_ONLY`)."""
    envs = [_shared(compose["services"][name]["environment"]) for name in AIRFLOW_SERVICES]
    assert all(env == envs[0] for env in envs)
    for name in AIRFLOW_SERVICES:
        own = set(compose["services"][name]["environment"]) & TASK_RUNNER_ONLY
        assert own == (TASK_RUNNER_ONLY if name in TASK_RUNNERS else set()), name
    env = envs[0]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "127.0.0.1:8080:8080" in compose["services"]["airflow-apiserver"]["ports"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${TICKET_AB_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["TICKET_AB_WATCH_INTERVAL_S"].startswith("${TICKET_AB_WATCH_INTERVAL_S:-")
    assert compose["services"]["airflow-triggerer"]["command"] == ["triggerer"]


def test_celery_profile_adds_redis_and_a_worker_the_executor_setting_points_at(compose):
    services = compose["services"]
    assert services["redis"]["image"].startswith("redis:7") and services["redis"]["profiles"] == ["celery"]
    worker = services["airflow-worker"]
    assert worker["profiles"] == ["celery"] and worker["command"] == ["celery", "worker"]
    assert _dependencies(worker)["redis"] == "service_healthy"
    env = worker["environment"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert all("profiles" not in s for n, s in services.items() if n not in ("redis", "airflow-worker"))


def test_bootstrap_registers_a_champion_once_before_anything_needs_one(compose):
    bootstrap = compose["services"]["bootstrap"]
    assert bootstrap["command"] == ["python", "-m", "ops", "bootstrap", "--n", "2000"]
    assert bootstrap["restart"] == "no"
    assert "--force" not in bootstrap["command"]  # without it, an existing champion is kept: safe on every `up`
    for name in NEEDS_CHAMPION:
        assert _waits_for(compose, name, "bootstrap", "service_completed_successfully"), name
    assert _waits_for(compose, "bootstrap", "mlflow", "service_healthy")


def test_each_written_volume_belongs_to_the_uid_that_writes_it_before_any_writer_starts(compose):
    """New named volumes are root-owned; the Airflow image runs as 50000, the router as 10001."""
    init = compose["services"]["volumes-init"]
    assert init["user"] == "0:0" and init["restart"] == "no"
    script = "\n".join(init["command"])
    at = {path: volume for volume, path in writable_mounts(init).items()}
    owner = {at[path]: (uid, gid) for uid, gid, path in OWN.findall(script)}
    group_writable = {at[path] for path in GROUP_WRITABLE.findall(script)}
    for name, service in compose["services"].items():
        mounts = writable_mounts(service)
        if name in ("volumes-init", "postgres") or not mounts:
            continue  # the postgres image's entrypoint owns its data directory itself
        uid, gid = service["user"].split(":")
        assert _waits_for(compose, name, "volumes-init", "service_completed_successfully"), name
        for volume in mounts:
            assert volume in owner, f"volumes-init does not chown {volume} ({name} writes it)"
            shared = gid == owner[volume][1] and volume in group_writable
            assert owner[volume][0] == uid or shared, f"{name} (uid {uid}) cannot write {volume} ({owner[volume]})"


def test_each_service_runs_as_the_uid_its_image_creates(compose):
    flask, airflow = (REPO / "Dockerfile.flask").read_text(), (REPO / "Dockerfile.airflow").read_text()
    assert "--uid 10001" in flask and "FROM apache/airflow:" in airflow  # the Airflow image's user is 50000
    for name in ROUTERS:
        assert compose["services"][name]["user"] == "10001:0"
    for name in (*AIRFLOW, "mlflow"):
        assert compose["services"][name]["user"] == "50000:0", name


def test_router_writes_only_to_its_log_state_and_config_volumes(compose):
    for name in ROUTERS:
        router = compose["services"][name]
        assert router["read_only"] is True
        assert set(writable_mounts(router).values()) == {"/data/logs", "/data/router", "/data/config"}
    config = {service for service, body in compose["services"].items()
              if any(v.startswith("router-config:") for v in body.get("volumes", []))}
    assert config == {*ROUTERS, "volumes-init"}, "only the routers share the A/B config store"
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared, volume


def test_airflow_reads_the_logs_the_router_writes(compose):
    router_logs = next(v for v in compose["services"]["router"]["volumes"] if v.endswith(":/data/logs"))
    scheduler = compose["services"]["airflow-scheduler"]
    assert router_logs in scheduler["volumes"]
    assert scheduler["environment"]["TICKET_AB_HOME"] == "/data"


def test_psycopg2_is_pinned_for_airflow_and_mlflow_on_postgres():
    pin = _pins(REPO / "requirements.txt").get("psycopg2-binary")
    assert pin, "psycopg2-binary is not pinned in requirements.txt"
    assert f"psycopg2-binary=={pin}" in (REPO / "requirements.in").read_text()
    assert f'"psycopg2-binary=={pin}"' in (REPO / "pyproject.toml").read_text()
    __import__("psycopg2")  # installed in the venv: `make stack` runs Airflow and MLflow on it too


def test_router_image_is_slim_non_root_with_healthcheck():
    dockerfile = (REPO / "Dockerfile.flask").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install -r router/requirements.txt" in dockerfile
    assert re.search(r"^USER router$", dockerfile, flags=re.M)
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    cmd = re.search(r'^CMD \[(.*)\]$', dockerfile, flags=re.M).group(1)
    assert "router/gunicorn.conf.py" in cmd and "router.wsgi:app" in cmd
    assert "umask 002" in cmd  # log day folders group-writable: the DAG's retention removes them
    assert (REPO / "router" / "gunicorn.conf.py").is_file() and (REPO / "router" / "wsgi.py").is_file()


def test_airflow_image_is_the_pinned_airflow_with_the_pipeline_pins():
    dockerfile = (REPO / "Dockerfile.airflow").read_text()
    assert "FROM apache/airflow:3.2.2-python3.11" in dockerfile
    assert "requirements.txt" in dockerfile
    assert _pins(REPO / "requirements.txt")["apache-airflow"] == "3.2.2"


def test_router_requirements_are_main_pins_without_training_packages():
    router = _pins(REPO / "router" / "requirements.txt")
    main = _pins(REPO / "requirements.txt")
    assert {"flask", "gunicorn", "mlflow-skinny", "scikit-learn"} <= set(router)
    for heavy in HEAVY:
        assert heavy not in router, heavy
    for package, version in router.items():
        assert main.get(package) == version, f"{package}=={version} differs from requirements.txt"


def _required() -> set[str]:
    return {name for name, kind, _ in VARIABLE.findall(COMPOSE.read_text()) if kind == "?"}


def _env_example() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", (REPO / ".env.example").read_text(), flags=re.M))


def test_every_service_waits_for_secrets_init_which_checks_every_required_secret(compose):
    """compose's `${VAR:?}` refuses only an empty value, so a one-shot checks them and everything waits for it."""
    init = compose["services"]["secrets-init"]
    names = init["command"][init["command"].index("--passwords-file") + 2:]
    assert set(names) == _required() - {"POSTGRES_USER"}, "add every required secret to secrets-init"
    assert set(init["environment"]) - {"POSTGRES_USER"} == set(names)
    assert init["restart"] == "no" and init["command"][:3] == ["python", "-m", "ops.stack.secret_files"]
    for name in compose["services"]:
        if name not in ("secrets-init", "volumes-init"):
            assert _waits_for(compose, name, "secrets-init", "service_completed_successfully"), name


def test_secrets_init_refuses_the_env_example_placeholders_naming_each_and_writes_nothing(compose, tmp_path, capsys):
    command = compose["services"]["secrets-init"]["command"][3:]
    files = [tmp_path / "mlflow-auth" / "basic_auth.ini", tmp_path / "airflow-auth" / "passwords.json"]
    argv = [*command[:2], "--auth-file", str(files[0]), "--passwords-file", str(files[1]), *command[6:]]
    assert secret_files.main(argv, _env_example()) == 2
    refused = capsys.readouterr().err
    for name in command[6:]:
        assert f"{name} still holds the .env.example placeholder" in refused, name
    assert not any(path.exists() for path in files)


def test_secrets_init_writes_the_secret_files_only_its_owner_can_read_once_every_secret_is_real(compose, tmp_path):
    command = compose["services"]["secrets-init"]["command"][3:]
    files = [tmp_path / "mlflow-auth" / "basic_auth.ini", tmp_path / "airflow-auth" / "passwords.json"]
    argv = [*command[:2], "--auth-file", str(files[0]), "--passwords-file", str(files[1]), *command[6:]]
    env = {name: f"{name.lower()}-a-real-secret%" for name in command[6:]} | {"POSTGRES_USER": "ticketab"}
    assert secret_files.main(argv, env) == 0
    for path in files:
        assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    config = configparser.ConfigParser()  # as MLflow reads it: '%' interpolation on
    config.read(files[0])
    assert config["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert config["mlflow"]["database_uri"] == ("postgresql+psycopg2://ticketab:postgres_password-a-real-secret%25"
                                                "@postgres:5432/mlflow_auth")
    assert json.loads(files[1].read_text()) == {"admin": env["AIRFLOW_ADMIN_PASSWORD"]}


def test_mlflow_runs_the_auth_app_with_no_secret_on_its_command_line(compose):
    mlflow = compose["services"]["mlflow"]
    assert f"--app-name={AUTH_APP}" in mlflow["command"]
    assert not [arg for arg in mlflow["command"] if "$" in arg]
    env = mlflow["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${REGISTRY_ADMIN_PASSWORD:?")
    assert "mlflow-auth:/mlflow/auth:ro" in mlflow["volumes"]
    assert "CREATE DATABASE mlflow_auth;" in compose["configs"]["postgres-init"]["content"]


def test_each_service_acts_as_its_own_registry_account_and_no_other(compose):
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if name not in REGISTRY_ACCOUNTS:
            assert not set(CREDENTIALS) & set(env), f"{name} has registry credentials it does not need"
            continue
        account = REGISTRY_ACCOUNTS[name]
        variable = "ADMIN" if account == ADMIN else account.upper()
        assert env["MLFLOW_TRACKING_USERNAME"] == account, name
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith(f"${{REGISTRY_{variable}_PASSWORD:?"), name
    init = compose["services"]["registry-init"]["environment"]
    assert {a.password_variable for a in ACCOUNTS} <= set(init)
    assert compose["services"]["registry-init"]["command"] == ["python", "-m", "ops.stack.registry_init"]
    assert _waits_for(compose, "bootstrap", "registry-init", "service_completed_successfully")


def test_the_task_runners_run_the_experiment_dag_against_the_first_router_with_the_admin_token(compose):
    """As `make stack` (ops.stack.programs.task_runner_env): replica 1 on compose's network, the admin token the
    routers check, the alerts' URLs from `.env` (optional), and no other service holds the token but the routers."""
    services, token, alerts = compose["services"], NAMES["router.admin_token"], NAMES["alert.urls"]
    router = services["router"]["environment"]
    for name in TASK_RUNNERS:
        env = services[name]["environment"]
        assert env[NAMES["rollout.router_url"]] == f"http://router:{router['TICKET_AB_PORT']}", name
        assert env[token] == router[token] and env[token].startswith(f"${{{token}:?"), name
        assert env[alerts] == f"${{{alerts}:-}}", name
    holders = {name for name, service in services.items() if token in (service.get("environment") or {})}
    assert holders == {*ROUTERS, *TASK_RUNNERS, "secrets-init"}
    assert {name for name, service in services.items() if alerts in (service.get("environment") or {})} == set(
        TASK_RUNNERS)
