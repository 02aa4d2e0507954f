"""MLflow outages: a running router keeps serving, and a router restarted while MLflow is down serves
the last known models and A/B config from its disk cache. Uses a private MLflow server so it can be killed."""

from __future__ import annotations

import pytest
from processes import start

from ops import servers
from ops.ports import free_port
from tests.integration.router.router_harness import (
    ADMIN_TOKEN,
    register,
    router_settings,
    set_config,
    start_router,
    stop_router,
)
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab.requestlog import read_requests
from ticket_ab.settings import get_settings


@pytest.fixture(scope="module")
def private_mlflow(tmp_path_factory):
    mlflow = get_settings(home=tmp_path_factory.mktemp("private-mlflow"), mlflow_port=free_port())
    server = start(servers.mlflow(mlflow), mlflow.mlflow_dir / "server.log")
    yield server, mlflow.tracking_uri
    server.stop()


@pytest.fixture(scope="module")
def settings(module_home, private_mlflow):
    _, uri = private_mlflow
    settings = router_settings(module_home, uri, "router-outage", reload_s=0.3)
    register(settings, fitted_pipeline(seed=0), "champion")
    register(settings, fitted_pipeline(seed=1, per_topic=20), "challenger")
    return settings


@pytest.fixture(scope="module")
def first_router(settings):
    running = start_router(settings)
    yield running
    stop_router(running)


@pytest.fixture(scope="module")
def config_before_outage(first_router):
    """The A/B config the experiment ran under when MLflow went away."""
    return set_config(first_router, ab_split_b=0.7, mode="split")


@pytest.fixture(scope="module")
def mlflow_stopped(first_router, config_before_outage, private_mlflow):
    """The private MLflow server, stopped after the first router loaded its models and config."""
    server, _ = private_mlflow
    server.stop()
    assert not server.running()
    return server


def test_router_keeps_serving_when_mlflow_is_stopped(first_router, mlflow_stopped):
    first_router.wait_all_workers(lambda body: body["registry"]["reachable"] is False, 15.0, "registry unreachable")
    bodies = [first_router.post("/predict", {"text": "vpn drops", "customer_id": f"c-{i}"}) for i in range(50)]
    assert [b.status_code for b in bodies] == [200] * 50
    assert {b.json()["model_version"] for b in bodies} == {"1", "2"}
    ready = first_router.get("/ready")
    assert ready.status_code == 200
    assert (ready.json()["champion"]["version"], ready.json()["source"]) == ("1", "registry")


def test_the_config_store_answers_while_mlflow_is_stopped_and_the_last_config_stays(first_router, mlflow_stopped,
                                                                                    config_before_outage):
    stale = f'"{config_before_outage["version"] - 1}"'
    response = first_router.post("/config", {"ab_split_b": 0.1}, token=ADMIN_TOKEN, headers={"If-Match": stale})
    assert (response.status_code, response.json()["error"]) == (412, "precondition_failed"), "judged by the store"
    assert response.headers["ETag"] == f'"{config_before_outage["version"]}"'
    assert all(body["config"] == config_before_outage for body in first_router.each_worker().values())


def test_restart_with_mlflow_down_serves_from_cache(first_router, mlflow_stopped, settings, config_before_outage):
    stop_router(first_router)
    restarted = start_router(settings)
    try:
        for body in restarted.each_worker().values():
            assert (body["ready"], body["source"], body["registry"]["reachable"]) == (True, "cache", False)
            assert body["config"] == config_before_outage
            assert (body["champion"]["version"], body["challenger"]["version"]) == ("1", "2")
            assert body["champion"]["source"] == body["challenger"]["source"] == "cache"
        bodies = [restarted.post("/predict", {"text": "printer jam", "ticket_id": f"T-{i}"}) for i in range(50)]
        assert [b.status_code for b in bodies] == [200] * 50
        assert {b.json()["model_version"] for b in bodies} == {"1", "2"}
        logged = read_requests(settings.logs_dir)
        assert logged.malformed == 0
        assert set(logged.rows["request_id"]) >= {b.json()["request_id"] for b in bodies}
    finally:
        stop_router(restarted)
