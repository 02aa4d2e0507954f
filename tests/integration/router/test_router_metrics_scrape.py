"""A real gunicorn router's /metrics carries every series the Grafana panels and alert rules query.

A panel on a name the router does not export is an empty graph, an alert on one never fires, and
neither complains: so scrape a router that has served traffic and look for each name.
"""

from __future__ import annotations

from collections import Counter

import pytest
from monitoring_queries import router_metric_names
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.router.router_harness import register, router_settings, start_router, stop_router
from tests.unit.router.router_testkit import fitted_pipeline

TEXTS = ["vpn drops every hour", "printer jam on floor 3", "refund for the double invoice charge",
         "outlook inbox does not sync", "new hire badge not ready", "app crash after update"]


@pytest.fixture(scope="module")
def router(module_home, mlflow_server):
    settings = router_settings(module_home, mlflow_server.uri, "router-metrics")
    register(settings, fitted_pipeline(seed=0), "champion")
    running = start_router(settings)
    yield running
    stop_router(running)


@pytest.fixture(scope="module")
def answers(router) -> list[dict]:
    payloads = [{"text": TEXTS[i % len(TEXTS)], "customer_id": f"c-{i}"} for i in range(24)]
    results = router.fire(payloads, threads=4)
    assert [status for status, _ in results] == [200] * len(payloads)
    return [body for _, body in results]


@pytest.fixture(scope="module")
def scraped(router, answers) -> list:
    response = router.get("/metrics")
    assert response.status_code == 200
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def test_every_panel_and_alert_metric_is_in_a_real_scrape(scraped):
    exported = {sample.name for sample in scraped}
    missing = {key: names - exported for key, names in router_metric_names().items() if names - exported}
    assert not missing, f"queried but not exported by the router: {missing}"


def test_predictions_are_counted_once_each_by_arm_and_topic_over_both_workers(scraped, answers):
    counted = Counter({(s.labels["variant"], s.labels["topic"]): s.value
                       for s in scraped if s.name == "ticket_ab_predictions_total"})
    assert +counted == Counter((body["variant"], body["topic"]) for body in answers)
