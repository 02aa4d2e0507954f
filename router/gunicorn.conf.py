"""gunicorn settings for the router: `.venv/bin/gunicorn -c router/gunicorn.conf.py router.wsgi:app`.

Everything comes from ticket_ab.settings (TICKET_AB_HOST, _PORT, _WORKERS, _THREADS, _HOME), so the
router is configured the same way as every other process. Preload stays off: each worker imports
the app after the fork, loading its own models and starting its own registry poll thread (threads
do not survive a fork). gthread workers keep one slow client from blocking a whole worker.
"""

import os
from pathlib import Path

from ticket_ab.settings import get_settings

_settings = get_settings()
_router = _settings.router

wsgi_app = "router.wsgi:app"
bind = f"{_router.host}:{_router.port}"
workers = _router.workers
threads = _router.threads
worker_class = "gthread"
preload_app = False
# First start downloads and warms up two models per worker; the default 30 s is tight on a cold disk.
timeout = 60
# Predictions take milliseconds. gunicorn 26's gthread shutdown loop sleeps in select() for the whole
# remaining grace period and only then closes idle keep-alive connections, so any client pool that
# holds a connection open keeps every worker alive for graceful_timeout: keep it short.
graceful_timeout = 5
keepalive = 5
# One control socket and one metrics folder per router instance: replicas of one home (`make stack`) differ
# by port (the default ~/.gunicorn/gunicorn.ctl would be shared by every instance).
control_socket = str(_settings.router_dir / f"gunicorn-{_router.port}.ctl")

# prometheus_client reads this when a worker first imports it, so it must be set in the master.
_metrics_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                          str(_settings.router_dir / f"metrics-{_router.port}")))


def on_starting(server) -> None:
    """Reset metrics, and import the heavy libraries once so workers fork with them in memory.

    Metric files left by a previous run's pids would be summed into this run's numbers. The imports
    are third-party only (no router code, no app state, no threads: checked), so preload stays off
    in spirit: each worker still builds its own app and models, and a HUP still reloads router
    code; but a worker boots in about a second instead of re-importing mlflow for several.
    """
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in _metrics_dir.glob("*.db"):  # only prometheus_client's files: the dir may be shared
        stale.unlink(missing_ok=True)
    import flask  # noqa: F401
    import mlflow.artifacts  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.pipeline  # noqa: F401


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges (model versions) so /metrics shows only running workers."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
