"""The compose topology as local processes: every service's command, environment, port and log.

`docker-compose.yml` and `make stack` start the same services with the same settings; this module
is the native side of that table, pure (it starts nothing), so a unit test can read it side by side
with the compose file. Service names are compose's.

Secrets (the routers' tokens, the customer key, Airflow's keys and UI password, the registry's
account passwords) come from the environment when set, as in compose's `.env`; otherwise they are
generated on first use and kept in `$TICKET_AB_HOME/stack/secrets.json` (mode 0600, replaced
atomically), so a restarted stack keeps them. A damaged secrets file is an error naming it, never
silently replaced by new secrets.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from ops import dagrun
from ops.health import ServiceError
from ops.ports import LOOPBACK, airflow_endpoint, router_endpoint
from ops.stack import configdb, postgres
from ticket_ab.atomic import write_atomic
from ticket_ab.settings import Settings

ADMIN_USER = "admin"
CELERY = "CeleryExecutor"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


@dataclass(frozen=True)
class Paths:
    """Everything the stack writes, below `$TICKET_AB_HOME/stack` (the services' own state stays in the home)."""

    root: Path

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        return cls(settings.home / "stack")

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor(self) -> Path:
        """supervisord's config (it holds the secrets: 0600 in a 0700 dir), socket, pid file and log."""
        return self.root / "supervisor"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"

    @property
    def registry_auth(self) -> Path:
        """MLflow's auth config (its permission database URL carries PostgreSQL's password: 0600 in a 0700 dir)."""
        return self.root / "mlflow-auth" / "basic_auth.ini"

    @property
    def airflow_passwords(self) -> Path:
        """The simple auth manager's password file, written by us (0600) so Airflow never generates and prints one."""
        return self.root / "airflow-auth" / "passwords.json"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"


@dataclass(frozen=True)
class Secrets:
    admin_token: str
    feedback_token: str
    customer_key: str
    client_token: str  # scores as integration `api`; more integrations: TICKET_AB_CLIENT_TOKENS in the environment
    config_password: str  # the routers' PostgreSQL role on the A/B config database (ops.stack.configdb)
    jwt_secret: str  # signs the tokens of Airflow's task execution API: one value for every Airflow process
    api_secret_key: str
    fernet_key: str  # encrypts Airflow connections and variables
    airflow_admin_password: str  # the Airflow UI's `admin` (simple auth manager), in a 0600 file the API server reads
    mlflow_secret_key: str  # signs the MLflow auth app's CSRF tokens (MLFLOW_FLASK_SERVER_SECRET_KEY)
    # The registry's accounts (ops.stack.accounts): its admin and one per role.
    registry_admin_password: str
    registry_router_password: str
    registry_pipeline_password: str
    registry_autopilot_password: str
    registry_promoter_password: str
    registry_operator_password: str

    def registry_password(self, account: str) -> str:
        return getattr(self, f"registry_{account}_password")


class SecretsError(ServiceError):
    """The kept secrets file cannot be used; the message names it (it is never silently replaced)."""


def _generate(name: str) -> str:
    """A new secret; Fernet keys have their own format (32 url-safe base64 bytes)."""
    if name == "fernet_key":
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(24)


def _kept(path: Path) -> dict[str, str]:
    """The secrets kept in `path` ({} when there is no file yet); an unreadable or damaged file is an error.

    Replacing a damaged file with new secrets would lock the stack out of what the old ones set up
    (Airflow's Fernet-encrypted connections, sessions signed with the old keys), so it is refused.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SecretsError(f"cannot read the stack's secrets file {path}: {exc.strerror}") from None
    advice = "restore it from a backup, or move it away to generate new secrets (and reset what used them)"
    try:
        kept = json.loads(text)
    except ValueError as exc:
        raise SecretsError(f"the stack's secrets file {path} is damaged ({exc}); {advice}") from None
    if not isinstance(kept, dict) or not all(isinstance(v, str) and v for v in kept.values()):
        raise SecretsError(f"the stack's secrets file {path} is damaged (not an object of non-empty strings); {advice}")
    return kept


def load_secrets(settings: Settings, paths: Paths) -> Secrets:
    """The environment's secrets where set, the kept (or newly generated) ones elsewhere.

    The file is replaced atomically (ticket_ab.atomic: a temp file created 0600, then renamed), so a
    crash mid-write leaves the old file whole and no reader ever sees a world-readable secret.
    """
    kept = _kept(paths.secrets)
    router = settings.router
    given = {"admin_token": router.admin_token, "feedback_token": router.feedback_token,
             "customer_key": router.customer_key, "client_token": router.client_token}
    values = {name: given.get(name) or kept.get(name) or _generate(name) for name in Secrets.__annotations__}
    if values != kept:
        write_private(paths.secrets, json.dumps(values, indent=2))
    return Secrets(**values)


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a file only its owner can read (mkstemp creates it 0600)."""
    write_atomic(path, text)
    path.chmod(0o600)  # already 0600; said, so a change to write_atomic cannot widen it unnoticed


def cluster(settings: Settings, paths: Paths) -> postgres.Cluster:
    return postgres.Cluster(paths.root / "postgres", settings.stack.postgres_port)


def replica_settings(settings: Settings, keys: Secrets) -> list[Settings]:
    """One settings object per router replica: consecutive ports from TICKET_AB_PORT, the stack's tokens."""
    tokens = {"admin_token": keys.admin_token, "feedback_token": keys.feedback_token, "customer_key": keys.customer_key,
              "client_token": keys.client_token,
              "config_store": configdb.url(settings.stack.postgres_port, keys.config_password)}
    return [settings.model_copy(update={"router": settings.router.model_copy(
        update={"port": settings.router.port + i, **tokens})}) for i in range(settings.stack.replicas)]


def replica_name(index: int) -> str:
    """Compose's names: `router`, `router-2`, ..."""
    return "router" if index == 0 else f"router-{index + 1}"


def experiment_router_url(settings: Settings, keys: Secrets) -> str:
    """Where the experiment DAG changes the split (`POST /config`): replica 1 (`router`), at the address the
    stack's own health check reaches it; TICKET_AB_ROLLOUT_ROUTER_URL, when set, wins. Every replica serves
    the one config store, so one replica is enough."""
    return settings.rollout.router_url or router_endpoint(replica_settings(settings, keys)[0]).url


def airflow_env(settings: Settings, pg: postgres.Cluster, keys: Secrets) -> dict[str, str]:
    """What every Airflow process of the stack reads: Postgres, the executor, the API server and its JWT secret."""
    api = airflow_endpoint(settings)
    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("airflow"),
        "AIRFLOW__CORE__EXECUTOR": settings.stack.executor,
        "AIRFLOW__CORE__PARALLELISM": str(settings.stack.parallelism),
        "AIRFLOW__API__HOST": api.host,
        "AIRFLOW__API__PORT": str(api.port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": api.url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api.url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": keys.jwt_secret,
        "AIRFLOW__API__SECRET_KEY": keys.api_secret_key,
        "AIRFLOW__CORE__FERNET_KEY": keys.fernet_key,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(Paths.of(settings).airflow_passwords),
    }
    if settings.stack.executor == CELERY:
        env["AIRFLOW__CELERY__BROKER_URL"] = f"redis://{LOOPBACK}:{settings.stack.redis_port}/0"
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + pg.url("airflow")
    return dagrun.airflow_env(settings, env)


def airflow_services(settings: Settings) -> list[str]:
    """The long-running Airflow services: compose's four, and the Celery worker with that executor."""
    return [*AIRFLOW_SERVICES, *(["airflow-worker"] if settings.stack.executor == CELERY else [])]


def airflow_command(service: str) -> list[str]:
    """`airflow-scheduler` -> `airflow scheduler`: compose's service names, its commands."""
    sub = {"airflow-init": ["db", "migrate"], "airflow-apiserver": ["api-server"],
           "airflow-worker": ["celery", "worker", "--concurrency", "2"]}
    return [sys.executable, "-m", "airflow", *sub.get(service, [service.removeprefix("airflow-")])]


def task_runners(settings: Settings) -> tuple[str, ...]:
    """The Airflow services that run the DAGs' tasks (and so talk to the registry, the router's `POST /config`
    and the chat): the scheduler's own subprocesses with the LocalExecutor, the Celery worker with Celery."""
    return ("airflow-worker",) if settings.stack.executor == CELERY else ("airflow-scheduler",)


def registry_init_command() -> list[str]:
    """The one-shot that sets the registry's accounts up (ops.stack.registry_init), as compose runs it."""
    return [sys.executable, "-m", "ops.stack.registry_init"]


def bootstrap_command(n: int) -> list[str]:
    """The one-shot bootstrap: registers a first champion only when none exists (the CLI checks)."""
    return [sys.executable, "-m", "ops", "bootstrap", "--n", str(n)]


def describe(settings: Settings, paths: Paths) -> dict[str, dict[str, str]]:
    """Service -> URL and log: what `stack up` and `stack status` print."""
    urls = {
        "postgres": f"postgresql://{postgres.USER}@{LOOPBACK}:{settings.stack.postgres_port} "
                    f"(password in {paths.root / 'postgres' / 'password'})",
        "mlflow": settings.tracking_uri,
        "airflow-apiserver": airflow_endpoint(settings).url,
        "prometheus": f"http://{LOOPBACK}:{settings.stack.prometheus_port}",
    }
    if settings.stack.executor == CELERY:
        urls["redis"] = f"redis://{LOOPBACK}:{settings.stack.redis_port}"
    for i in range(settings.stack.replicas):
        urls[replica_name(i)] = f"http://{settings.router.host}:{settings.router.port + i}"
    return {name: {"url": url, "log": str(paths.log(name))} for name, url in urls.items()}
