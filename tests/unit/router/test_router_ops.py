"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import resource
import signal
from contextlib import contextmanager

from prometheus_client.parser import text_string_to_metric_families

from router.models import FROM_CACHE
from tests.unit.router.router_testkit import loaded
from ticket_ab.logstore import REQUESTS, shard_files
from ticket_ab.requestlog import read_requests


def samples(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def value(snapshot, name: str, **labels: str) -> float:
    return snapshot.get((name, tuple(sorted(labels.items()))), 0.0)


def test_create_app_loads_the_models_before_serving(app, store):
    assert store.started


def test_health_is_200(client):
    assert client.get("/health").get_json() == {"status": "ok"}


def test_ready_reports_versions_source_and_config(client):
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert body["ready"] is True
    assert (body["champion"]["version"], body["challenger"]["version"], body["source"]) == ("1", "2", "registry")
    assert body["config"]["ab_split_b"] == 0.5
    assert body["worker_pid"] > 0


def test_ready_says_when_models_come_from_the_cache(client, store, champion_model):
    store.set(champion=loaded(champion_model.pipeline, "champion", "1", source=FROM_CACHE), challenger=None)
    store.reachable = False
    body = client.get("/ready").get_json()
    assert (body["ready"], body["source"], body["challenger"], body["registry"]["reachable"]) == (
        True, "cache", None, False)


def test_ready_is_503_without_a_champion(client, store):
    store.set(champion=None)
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json()["ready"] is False


def test_health_stays_200_without_a_champion(client, store):
    store.set(champion=None)
    assert client.get("/health").status_code == 200


def test_metrics_count_requests_by_variant_and_status_and_time_them(app, client):
    app.extensions["ticket_ab"].config.update(ab_split_b=1.0, updated_by="test")
    before = samples(client)
    for _ in range(3):
        client.post("/predict", json={"text": "vpn drops"})
    client.post("/predict", json={"text": ""})
    after = samples(client)
    ok_b = dict(endpoint="/predict", variant="B", status="200")
    assert value(after, "ticket_ab_requests_total", **ok_b) - value(before, "ticket_ab_requests_total", **ok_b) == 3
    bad = dict(endpoint="/predict", variant="-", status="422")
    assert value(after, "ticket_ab_requests_total", **bad) - value(before, "ticket_ab_requests_total", **bad) == 1
    count = dict(endpoint="/predict", variant="B")
    assert (value(after, "ticket_ab_request_latency_seconds_count", **count)
            - value(before, "ticket_ab_request_latency_seconds_count", **count)) == 3


def test_metrics_count_fallbacks(app, client, store, exploding_challenger):
    store.set(challenger=exploding_challenger)
    app.extensions["ticket_ab"].config.update(ab_split_b=1.0, updated_by="test")
    before = value(samples(client), "ticket_ab_fallbacks_total", reason="challenger_error")
    client.post("/predict", json={"text": "vpn drops"})
    client.post("/predict", json={"text": "vpn drops"})
    assert value(samples(client), "ticket_ab_fallbacks_total", reason="challenger_error") - before == 2


def test_metrics_label_unknown_routes_without_the_raw_path(client):
    client.get("/some/random/path/123")
    names = {labels for (name, labels) in samples(client) if name == "ticket_ab_requests_total"}
    assert all(dict(labels)["endpoint"] != "/some/random/path/123" for labels in names)
    assert any(dict(labels)["endpoint"] == "unmatched" for labels in names)


@contextmanager
def file_size_limit(limit: int):
    """A real RLIMIT_FSIZE for this process (SIGXFSZ ignored, so a write past it fails with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_full_disk_still_answers_says_logged_false_and_keeps_every_earlier_row(client, settings):
    assert all(client.post("/predict", json={"text": f"vpn drops {i}"}).get_json()["logged"] for i in range(3))
    (path,) = shard_files(settings.logs_dir, REQUESTS)
    size = path.stat().st_size
    before = value(samples(client), "ticket_ab_log_write_failures_total", log="requests")
    with file_size_limit(size + 100):  # room for part of a row, not all of it
        response = client.post("/predict", json={"text": "vpn drops again"})
    assert response.status_code == 200
    assert (response.get_json()["topic"], response.get_json()["logged"]) == ("network", False)
    assert path.stat().st_size == size  # no half row
    read = read_requests(settings.logs_dir)
    assert (read.malformed, len(read.rows)) == (0, 3)
    assert value(samples(client), "ticket_ab_log_write_failures_total", log="requests") - before == 1


def test_ready_drains_a_replica_whose_log_fails_until_it_can_write_again(client, settings):
    settings.logs_dir.mkdir(parents=True)
    (settings.logs_dir / REQUESTS).write_text("a file where the log folder should be")
    assert client.post("/predict", json={"text": "vpn drops"}).get_json()["logged"] is False
    response = client.get("/ready")
    assert response.status_code == 503
    logs = response.get_json()["logs"]
    assert (logs["requests"]["writable"], logs["requests"]["lost_rows"], logs["feedback"]["writable"]) == (
        False, 1, True)
    assert "requests log not writable" in logs["requests"]["error"]
    assert client.get("/health").status_code == 200  # a restart would not help: liveness stays green
    (settings.logs_dir / REQUESTS).unlink()
    assert client.get("/ready").status_code == 200  # the probe write succeeded: back in rotation
    assert client.post("/predict", json={"text": "vpn drops"}).get_json()["logged"] is True
