"""The environment of every process we start: where it runs, what it reads, and only its own secrets.

A child recreates its settings from environment variables (ticket_ab.settings.to_env), so what a
parent holds is what the child reads. Secrets are the exception: the router's tokens and customer
key, Airflow's keys, the database URLs that carry the PostgreSQL password and the registry's
credentials are dropped from what a child inherits and given back only to the process they belong to
(`secrets=True`, or a program's own `environment=` in a supervisord config), so no process reads
another one's secrets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ops.stack.accounts import ACCOUNTS
from ticket_ab.settings import Settings, to_env

REPO = Path(__file__).resolve().parents[1]  # every service's working directory: relative paths work as typed
# Secrets of the stack's processes (ops.stack.topology): each goes to the processes that need it, and only to them.
STACK_SECRETS = frozenset({
    "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "MLFLOW_BACKEND_STORE_URI",
    # The registry: its admin password and CSRF key (MLflow's server), and the account a client acts as
    # (MLflow's client reads them); a launcher's own account is never passed on to what it starts.
    "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", *(account.password_variable for account in ACCOUNTS)})
# A router keeps its metrics under its own home: an inherited multiprocess dir would be shared by every instance.
NOT_INHERITED = frozenset({"PROMETHEUS_MULTIPROC_DIR"})


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Ours, bytecode cached, this venv's bin dir leading PATH, MLflow's unused extras off.

    `airflow standalone` and `mlflow server` start their parts (`airflow ...`, `uvicorn`) by name,
    and must get this venv's.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    # The MLflow server's GenAI job runner forks two extra consumers we never use.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # gunicorn and Airflow retitle their processes (setproctitle), which by default overwrites the memory
    # /proc/<pid>/environ reads: with this, it keeps showing what a process was started with, so what each
    # process holds can be audited (the stack's tests read it).
    env.setdefault("SPT_NOENV", "1")
    env.update(extra or {})
    return env


def secret_names(settings: Settings) -> frozenset[str]:
    """Every variable that carries a secret: the settings' tokens and key, and the stack's."""
    return STACK_SECRETS | (to_env(settings, secrets=True).keys() - to_env(settings).keys())


def inherited(settings: Settings) -> dict[str, str]:
    """What every child starts from (and supervisord runs with): python_env without any secret."""
    dropped = secret_names(settings) | NOT_INHERITED
    return {name: value for name, value in python_env().items() if name not in dropped}


def child_env(settings: Settings, extra: dict[str, str] | None = None, *, secrets: bool = False) -> dict[str, str]:
    """`inherited` carrying `settings`, so the child reads exactly what its parent holds (tokens if asked)."""
    return {**inherited(settings), **to_env(settings, secrets=secrets), **(extra or {})}


def own_part(env: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    """What `env` sets beyond `base`: a supervisord program's `environment=` over supervisord's own environment.

    A program cannot unset what supervisord passes on, so `env` must keep every variable of `base`.
    """
    missing = base.keys() - env.keys()
    if missing:
        raise ValueError(f"a program cannot drop {sorted(missing)} from supervisord's environment")
    return {name: value for name, value in env.items() if base.get(name) != value}
