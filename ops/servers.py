"""The local servers' commands and environments: MLflow and the gunicorn router.

`make demo`, `make mlflow` and `make stack` hand these to supervisord; the integration tests and the
benchmarks hand them to mirakuru. One description, so what the tests prove is what a user runs.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ops.env import child_env
from ops.health import ServiceError
from ops.ports import LOOPBACK, mlflow_endpoint, router_endpoint
from ticket_ab.settings import Settings, env_names

GUNICORN_CONF = "router/gunicorn.conf.py"  # relative to REPO, the cwd of every service: printed as typed
AUTH_APP = "ticket-ab-auth"  # MLflow's basic-auth with our alias and tag rules (ops.stack.registry_auth)
# What `make demo` and `make mlflow` say about the MLflow they start without `auth`.
OPEN_REGISTRY = ("OPEN: no authentication, so any user of this host can change its models and aliases "
                 "(127.0.0.1 only; `make stack` runs MLflow with accounts)")


@dataclass(frozen=True)
class Server:
    """A server's command, its whole environment (its own secrets included) and its liveness URL."""

    name: str
    command: list[str]
    env: dict[str, str]
    health_url: str


def binary(name: str, install: str) -> str:
    """The path of a program a service runs, or a one-line error saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"`{name}` is not on PATH: {install}")
    return path


@dataclass(frozen=True)
class RegistryAuth:
    """What MLflow's auth app needs: its config file (0600: it names the permission database) and two secrets."""

    config: Path
    admin_password: str  # creates the `admin` account on the first start only
    secret_key: str  # signs the auth app's CSRF tokens

    def env(self) -> dict[str, str]:
        return {"MLFLOW_AUTH_CONFIG_PATH": str(self.config), "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key}


def mlflow(settings: Settings, backend_uri: str | None = None, auth: RegistryAuth | None = None) -> Server:
    """MLflow with proxied artifacts under the settings' home, on 127.0.0.1:mlflow_port.

    The backend store is sqlite under the home unless `backend_uri` names another (the stack's
    PostgreSQL). It goes in MLFLOW_BACKEND_STORE_URI (the variable `mlflow server` reads for
    --backend-store-uri), not on the command line, where every local user could read its password.
    With `auth` (the stack) every request needs an account (`--app-name`, AUTH_APP); without it (the
    demo, `make mlflow`) the server is open to anyone on this host, and its users are told so.
    Clients reach the artifacts only through the server (`--artifacts-destination`, proxied), never
    through a path on disk.
    """
    directory = settings.mlflow_dir
    command = [sys.executable, "-m", "mlflow", "server", "--artifacts-destination", str(directory / "artifacts"),
               "--host", LOOPBACK, "--port", str(settings.mlflow_port), "--workers", "1",
               *(["--app-name", AUTH_APP] if auth else [])]
    env = child_env(settings, {"MLFLOW_BACKEND_STORE_URI": backend_uri or f"sqlite:///{directory / 'mlflow.db'}",
                               **(auth.env() if auth else {})})
    return Server("mlflow", command, env, mlflow_endpoint(settings).url + "/health")


def check_tracking_uri(settings: Settings) -> None:
    """The local MLflow server is only useful if the tracking URI points at it: say so before starting it."""
    url = mlflow_endpoint(settings).url
    if settings.tracking_uri.rstrip("/") not in (url, f"http://localhost:{settings.mlflow_port}"):
        name = env_names()["tracking_uri"]
        raise ServiceError(f"{name} is {settings.tracking_uri}, but the local MLflow server listens on {url}; "
                           f"unset {name} or point it there")


def gunicorn_command() -> list[str]:
    """The router as `make serve` runs it; its config file reads host, port and workers from the settings."""
    return [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, "router.wsgi:app"]


def router(settings: Settings) -> Server:
    """gunicorn with the repo's config, reading `settings`, the router's tokens and customer key included."""
    return Server("router", gunicorn_command(), child_env(settings, secrets=True),
                  router_endpoint(settings).url + "/health")
