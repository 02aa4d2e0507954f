"""Integration harness: a real gunicorn router (2 workers) over a real MLflow registry.

The router is started with router/gunicorn.conf.py, as `make serve` does. Each test module gets its
own TICKET_AB_HOME, registered-model name and port, so modules cannot see each other's aliases,
config or logs. Everything waits on a deadline, never on a bare sleep.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import requests
from processes import Running, start

from ops import servers
from ops.health import wait_until
from ops.ports import free_port, router_endpoint
from ticket_ab import registry
from ticket_ab.settings import Settings, get_settings

WORKERS = 2
ADMIN_TOKEN = "integration-admin-token"
FEEDBACK_TOKEN = "integration-feedback-token"
EXAMPLE = pd.DataFrame({"text": ["vpn drops every hour", "printer is jammed", "invoice charged twice"]})


@dataclass
class Router:
    """A running `gunicorn -c router/gunicorn.conf.py` (started by mirakuru) and the settings it was started with."""

    settings: Settings
    service: Running

    @property
    def url(self) -> str:
        return router_endpoint(self.settings).url

    @property
    def log_path(self) -> Path:
        return self.service.log

    def post(self, path: str, payload: dict[str, Any], token: str | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        """One request on a fresh connection (so requests spread over workers and none lingers open)."""
        headers = {"Connection": "close"} | ({"Authorization": f"Bearer {token}"} if token else {}) | (headers or {})
        return requests.post(self.url + path, json=payload, headers=headers, timeout=30)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers={"Connection": "close"}, timeout=30)

    def fire(self, payloads: list[dict[str, Any]], threads: int = 8,
             token: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        """POST /predict `payloads` from `threads` keep-alive sessions (with a client `token`, if given);
        (status, body) per payload in order.

        Only plain data is returned: a kept Response pins its connection open, which would hold the
        workers in their graceful shutdown.
        """

        def run(offset: int) -> list[tuple[int, int, dict[str, Any]]]:
            with requests.Session() as session:
                session.headers.update({"Authorization": f"Bearer {token}"} if token else {})
                out = []
                for i in range(offset, len(payloads), threads):
                    r = session.post(self.url + "/predict", json=payloads[i], timeout=30)
                    out.append((i, r.status_code, r.json()))
                return out

        with ThreadPoolExecutor(threads) as pool:
            results = sorted(item for batch in pool.map(run, range(threads)) for item in batch)
        return [(status, body) for _, status, body in results]

    def each_worker(self, path: str = "/ready", deadline_s: float = 20.0,
                    check: Callable[[dict[str, Any]], None] | None = None) -> dict[int, dict[str, Any]]:
        """The latest answer of every worker: bursts of concurrent fresh connections reach all of them.

        `check`, if given, is applied to every answer on the way, not only to the latest ones.
        """
        seen: dict[int, dict[str, Any]] = {}

        def burst() -> bool:
            for body in pool.map(lambda _: self.get(path).json(), range(16)):
                if check:
                    check(body)
                seen[body["worker_pid"]] = body
            return len(seen) >= self.settings.router.workers

        with ThreadPoolExecutor(8) as pool:
            wait_until(burst, deadline_s, f"all {self.settings.router.workers} workers answered {path}",
                       failed=self.service.failed, interval_s=0)
        return seen

    def wait_all_workers(self, check: Callable[[dict[str, Any]], bool], deadline_s: float, what: str) -> float:
        """Poll /ready until every worker satisfies `check`; returns the seconds it took."""
        start = time.monotonic()
        wait_until(lambda: all(check(body) for body in self.each_worker(deadline_s=deadline_s).values()),
                   deadline_s, f"every worker reached: {what}", failed=self.service.failed, interval_s=0.05)
        return time.monotonic() - start


def worker_pids(router: Router) -> set[int]:
    """The pids of the gunicorn master's worker processes, as the operating system sees them."""
    return {child.pid for child in psutil.Process(router.service.pid).children()}


def sigkill_a_worker(router: Router) -> int:
    """SIGKILL one worker of `router` (no shutdown of any kind), as the OOM killer would; its pid."""
    victim = min(worker_pids(router))
    os.kill(victim, signal.SIGKILL)
    return victim


def wait_replaced(router: Router, before: set[int], killed: int, deadline_s: float) -> int:
    """Wait until gunicorn has replaced the `killed` one of the workers `before` and every worker is ready.

    Returns the new worker's pid.
    """

    def replaced() -> set[int]:
        pids = worker_pids(router) - {killed}
        return pids if len(pids) >= router.settings.router.workers else set()

    pids = wait_until(replaced, deadline_s, f"gunicorn replaced worker {killed}", failed=router.service.failed)
    router.wait_all_workers(lambda body: body["ready"] and body["worker_pid"] in pids, deadline_s,
                            f"the worker replacing {killed} is ready")
    return min(pids - before)


def start_router(settings: Settings, deadline_s: float = 90.0) -> Router:
    """Start gunicorn as the demo does and wait until every worker has loaded its models."""
    service = start(servers.router(settings), settings.home / f"router-{time.time_ns()}.log", deadline_s)
    router = Router(settings, service)
    try:
        router.each_worker(deadline_s=deadline_s)
    except BaseException:
        service.stop()
        raise
    return router


def stop_router(router: Router) -> None:
    router.service.stop()


@contextmanager
def running_routers(settings: list[Settings]) -> Iterator[list[Router]]:
    """One router per settings (replicas), started in turn; all that started are stopped on the way out."""
    running: list[Router] = []
    try:
        for each in settings:
            running.append(start_router(each))
        yield running
    finally:
        for router in running:
            stop_router(router)


def router_settings(home: Path, tracking_uri: str, name: str, log_root: Path | None = None, **router: Any) -> Settings:
    """Module-scoped settings: the conftest's `make_settings` is per test, a gunicorn is per module.

    `log_root` points the request and feedback logs at a root shared with other replicas (default:
    the home's own `logs/`). Replicas of one name share one A/B config store: a SQLite file beside
    their homes (pytest's temp dirs share a parent), as replicas on one host do.
    """
    model_name = f"{name}-{os.getpid()}"
    values: dict[str, Any] = dict(host="127.0.0.1", port=free_port(), workers=WORKERS, threads=4,
                                  reload_s=0.5, split_b=0.5, admin_token=ADMIN_TOKEN, feedback_token=FEEDBACK_TOKEN,
                                  config_store=f"sqlite:///{home.parent / f'{model_name}-config.db'}")
    values.update(router)
    logs = {"log": {"root": str(log_root)}} if log_root is not None else {}
    return get_settings(home=home, tracking_uri=tracking_uri, model_name=model_name, router=values,
                        **logs)


def register(settings: Settings, pipeline: Any, alias: str | None = None) -> str:
    """Log and register `pipeline` as a new version of the settings' model; optionally alias it."""
    return registry.publish(settings.tracking_uri, settings.model_name, pipeline, EXAMPLE, alias=alias,
                            why="router integration test", tags={"purpose": "router-test"})


def move(settings: Settings, alias: str, version: str | None) -> None:
    client = registry.connect(settings.tracking_uri)
    registry.move_alias(client, settings.model_name, alias, version, why="router integration test")


def set_config(router: Router, *others: Router, **changes: Any) -> dict[str, Any]:
    """POST /config to `router` (with the ETag it just read); wait until every worker of it and of `others`
    serves the answer.

    The promise is reload_s + 1 s; the wait allows 2 s more for a busy machine (the tests that
    time the promise itself look after exactly reload_s + 1 s).
    """
    etag = router.get("/config").headers["ETag"]
    response = router.post("/config", changes, token=ADMIN_TOKEN, headers={"If-Match": etag})
    assert response.status_code == 200, response.text
    config = response.json()
    for each in (router, *others):
        each.wait_all_workers(lambda body: body["config"] == config, each.settings.router.reload_s + 3.0,
                              f"config {config}")
    return config
