"""What "up" means for each service of the stack: the health check `up` and `restart` wait for.

supervisord knows whether a process runs; these say whether it serves: PostgreSQL accepts a
connection, MLflow and Prometheus answer their health URLs, a router replica has loaded its models
(`/ready`), and Airflow's API server reports a recent heartbeat of the scheduler, DAG processor and
triggerer. The Celery worker has no check of its own: running is all supervisord can tell.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable

from ops.health import http_ok
from ops.ports import LOOPBACK, airflow_endpoint, router_endpoint
from ops.stack import postgres
from ops.stack.topology import AIRFLOW_SERVICES, CELERY, Secrets, replica_name, replica_settings
from ticket_ab.settings import Settings

# airflow service -> its part of the API server's health answer
COMPONENTS = {"airflow-scheduler": "scheduler", "airflow-dag-processor": "dag_processor",
              "airflow-triggerer": "triggerer"}
Check = Callable[[], bool]


def airflow_health(settings: Settings) -> dict:
    """The API server's /api/v2/monitor/health answer ({} while it does not answer)."""
    try:
        with urllib.request.urlopen(f"{airflow_endpoint(settings).url}/api/v2/monitor/health", timeout=3) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return {}


def airflow_healthy(settings: Settings, services: tuple[str, ...] = tuple(COMPONENTS)) -> bool:
    """The metadatabase and the heartbeats of `services` are healthy."""
    health = airflow_health(settings)
    parts = ("metadatabase", *(COMPONENTS[name] for name in services))
    return all((health.get(part) or {}).get("status") == "healthy" for part in parts)


def accepts(port: int) -> bool:
    """A TCP connection to 127.0.0.1:port succeeds (Redis has no HTTP health endpoint)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((LOOPBACK, port)) == 0


def checks(settings: Settings, pg: postgres.Cluster, keys: Secrets) -> dict[str, Check]:
    """Service name -> its health check (services without one are absent)."""
    found: dict[str, Check] = {
        "postgres": lambda: postgres.accepts_connections(pg),
        "mlflow": lambda: http_ok(settings.tracking_uri + "/health"),
        "airflow-apiserver": lambda: http_ok(f"{airflow_endpoint(settings).url}/api/v2/monitor/health"),
        "prometheus": lambda: http_ok(f"http://{LOOPBACK}:{settings.stack.prometheus_port}/-/ready"),
    }
    if settings.stack.executor == CELERY:
        found["redis"] = lambda: accepts(settings.stack.redis_port)
    for name in AIRFLOW_SERVICES:
        if name in COMPONENTS:
            found[name] = _component_check(settings, name)
    for i, replica in enumerate(replica_settings(settings, keys)):
        found[replica_name(i)] = _url_check(router_endpoint(replica).url + "/ready")
    return found


def _component_check(settings: Settings, name: str) -> Check:
    return lambda: airflow_healthy(settings, (name,))


def _url_check(url: str) -> Check:
    return lambda: http_ok(url)
