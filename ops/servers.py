"""The local servers' commands and environments: MLflow and the gunicorn router.

`make demo`, `make mlflow` and `make stack` hand these to supervisord; the integration tests and the
benchmarks hand them to mirakuru. One description, so what the tests prove is what a user runs.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass

from ops.env import child_env
from ops.health import ServiceError
from ops.ports import LOOPBACK, mlflow_endpoint, router_endpoint
from ticket_ab.settings import Settings, env_names

GUNICORN_CONF = "router/gunicorn.conf.py"  # relative to REPO, the cwd of every service: printed as typed


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


def mlflow(settings: Settings, backend_uri: str | None = None) -> Server:
    """MLflow with proxied artifacts under the settings' home, on 127.0.0.1:mlflow_port.

    The backend store is sqlite under the home unless `backend_uri` names another (the stack's
    PostgreSQL). It goes in MLFLOW_BACKEND_STORE_URI (the variable `mlflow server` reads for
    --backend-store-uri), not on the command line, where every local user could read its password.
    """
    directory = settings.mlflow_dir
    command = [sys.executable, "-m", "mlflow", "server", "--artifacts-destination", str(directory / "artifacts"),
               "--host", LOOPBACK, "--port", str(settings.mlflow_port), "--workers", "1"]
    env = child_env(settings, {"MLFLOW_BACKEND_STORE_URI": backend_uri or f"sqlite:///{directory / 'mlflow.db'}"})
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
