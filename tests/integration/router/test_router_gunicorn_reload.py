"""Alias moves in the registry reach every gunicorn worker without a restart or a failed request."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests

from tests.integration.router.router_harness import (
    move,
    register,
    router_settings,
    set_config,
    start_router,
    stop_router,
)
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab.names import A, B
from ticket_ab.requestlog import read_requests


@pytest.fixture(scope="module")
def router(module_home, mlflow_server):
    settings = router_settings(module_home, mlflow_server.uri, "router-reload", reload_s=0.3, split_b=0.0)
    register(settings, fitted_pipeline(seed=0), "champion")
    register(settings, fitted_pipeline(seed=1, per_topic=20), "challenger")
    register(settings, fitted_pipeline(seed=2, per_topic=25))
    running = start_router(settings)
    yield running
    stop_router(running)


class Traffic:
    """Keyless predictions from 4 threads until stopped; records every status and served version."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(4)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                r = session.post(self.url + "/predict", json={"text": "vpn drops every hour"}, timeout=30)
                self.results.append((r.status_code, r.json().get("model_version", "")))

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def test_alias_move_is_hot_swapped_on_every_worker_without_failed_requests(router):
    settings = router.settings
    with Traffic(router.url) as traffic:
        deadline = time.monotonic() + 10
        while len(traffic.results) < 50:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        move(settings, "champion", "3")
        took = router.wait_all_workers(lambda body: body["champion"]["version"] == "3", 15.0, "champion v3")
        served_before = len(traffic.results)
        deadline = time.monotonic() + 10
        while len(traffic.results) < served_before + 100:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    statuses = Counter(status for status, _ in traffic.results)
    assert statuses == Counter({200: len(traffic.results)}), statuses
    versions = [version for _, version in traffic.results]
    assert versions[0] == "1" and set(versions) == {"1", "3"}
    assert set(versions[served_before + 8:]) == {"3"}, "a worker kept serving v1 after reporting v3"
    assert took < 10 * settings.router.reload_s + 5
    logged = read_requests(settings.logs_dir)
    assert logged.malformed == 0
    assert set(logged.rows["model_version"]) == {"1", "3"}


def test_removing_the_challenger_alias_sends_all_traffic_to_the_champion(router):
    set_config(router, ab_split_b=1.0)
    assert {router.post("/predict", {"text": "printer jam"}).json()["variant"] for _ in range(10)} == {B}
    move(router.settings, "challenger", None)
    router.wait_all_workers(lambda body: body["challenger"] is None, 15.0, "no challenger")
    bodies = [router.post("/predict", {"text": "printer jam"}).json() for _ in range(20)]
    assert {(b["variant"], b["model_alias"]) for b in bodies} == {(A, "champion")}


def test_a_new_challenger_alias_is_picked_up_and_served(router):
    set_config(router, ab_split_b=1.0)
    move(router.settings, "challenger", "2")
    router.wait_all_workers(lambda body: (body["challenger"] or {}).get("version") == "2", 15.0, "challenger v2")
    bodies = [router.post("/predict", {"text": "printer jam"}).json() for _ in range(20)]
    assert {(b["variant"], b["model_alias"], b["model_version"]) for b in bodies} == {(B, "challenger", "2")}
