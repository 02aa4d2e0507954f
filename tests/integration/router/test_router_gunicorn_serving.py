"""The router under gunicorn (2 workers x 4 threads) against the session MLflow server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import pandas as pd
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import chisquare

from ops.env import child_env
from tests.integration.router.router_harness import (
    ADMIN_TOKEN,
    FEEDBACK_TOKEN,
    Router,
    register,
    router_settings,
    set_config,
    start_router,
    stop_router,
)
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab import registry
from ticket_ab.names import CHAMPION, A, B
from ticket_ab.requestlog import read_feedback, read_requests

TEXTS = ["vpn drops every hour", "printer jam on floor 3", "refund for the double invoice charge",
         "outlook inbox does not sync", "new hire badge not ready", "app crash after update"]


@pytest.fixture(scope="module")
def router(module_home, mlflow_server):
    settings = router_settings(module_home, mlflow_server.uri, "router-serving")
    versions = (register(settings, fitted_pipeline(seed=0), "champion"),
                register(settings, fitted_pipeline(seed=1, per_topic=20), "challenger"))
    assert versions == ("1", "2")
    running = start_router(settings)
    yield running
    stop_router(running)


def metric(router: Router, name: str, **labels: str) -> float:
    text = router.get("/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_both_workers_serve_the_registry_versions(router):
    workers = router.each_worker()
    assert len(workers) == 2
    for body in workers.values():
        assert (body["ready"], body["source"], body["champion"]["version"], body["challenger"]["version"]) == (
            True, "registry", "1", "2")


def test_config_change_is_seen_by_every_worker_within_the_reload_interval_plus_one_second(router):
    set_config(router, ab_split_b=0.5, mode="split")
    posted = router.post("/config", {"ab_split_b": 0.2}, token=ADMIN_TOKEN, headers={"If-Match": "*"})
    assert posted.status_code == 200
    # The promise is "in effect everywhere within reload_s + 1 s": look only after that, so slow polling
    # on a busy machine cannot fail the test, and every worker's first answer must show the change.
    time.sleep(router.settings.router.reload_s + 1.0)

    def updated(body: dict) -> None:
        assert body["config"] == posted.json(), f"worker {body['worker_pid']} still has the old config"

    assert len(router.each_worker(check=updated)) == 2
    assert router.get("/config").json() == posted.json()


def test_2000_requests_from_8_threads_give_exactly_2000_log_rows(router):
    before = read_requests(router.settings.logs_dir)
    payloads = [{"text": f"{TEXTS[i % len(TEXTS)]}, case {i}\nline two, \"quoted\"", "ticket_id": f"T-{i}"}
                for i in range(2000)]
    results = router.fire(payloads)
    assert [status for status, _ in results] == [200] * 2000
    after = read_requests(router.settings.logs_dir)
    assert after.malformed == before.malformed == 0
    new = after.rows.iloc[len(before.rows):]
    assert len(new) == 2000
    assert set(new["request_id"]) == {body["request_id"] for _, body in results}
    assert new["text"].str.contains("line two", regex=False).all()


def test_same_customer_sees_the_same_model_on_every_worker(router):
    set_config(router, ab_split_b=0.5, mode="split")
    customers = [f"customer-{i}" for i in range(40)]
    by_customer: dict[str, set[str]] = {}
    for customer in customers:
        for _ in range(3):
            body = router.post("/predict", {"text": TEXTS[0], "customer_id": customer}).json()
            by_customer.setdefault(customer, set()).add(body["variant"])
    assert all(len(v) == 1 for v in by_customer.values())
    assert {v for vs in by_customer.values() for v in vs} == {A, B}


@pytest.mark.parametrize("split_b", [0.3])
def test_observed_split_matches_the_configured_split(router, split_b: float):
    set_config(router, ab_split_b=split_b, mode="split")
    n = 10_000
    payloads = [{"text": TEXTS[i % len(TEXTS)]} if i % 2 else {"text": TEXTS[0], "customer_id": f"srm-{i}"}
                for i in range(n)]
    counts = Counter(body["variant"] for _, body in router.fire(payloads))
    p = chisquare([counts[A], counts[B]], [n * (1 - split_b), n * split_b]).pvalue
    assert p > 0.001, f"sample ratio mismatch: {dict(counts)} for split {split_b} (p={p:.2g})"


def test_metrics_add_up_over_both_workers(router):
    set_config(router, ab_split_b=1.0, mode="split")
    before = metric(router, "ticket_ab_requests_total", endpoint="/predict", variant=B, status="200")
    assert {status for status, _ in router.fire([{"text": TEXTS[1]}] * 200)} == {200}
    after = metric(router, "ticket_ab_requests_total", endpoint="/predict", variant=B, status="200")
    assert after - before == 200
    assert metric(router, "ticket_ab_model_version", alias="champion") == 2 * 1
    assert metric(router, "ticket_ab_request_latency_seconds_count", endpoint="/predict") > 0


def test_shadow_mode_logs_both_predictions_over_http(router):
    set_config(router, ab_split_b=0.5, mode="shadow")
    results = router.fire([{"text": TEXTS[2]}] * 40)
    assert {(body["variant"], body["model_alias"]) for _, body in results} == {(A, "champion")}
    rows = read_requests(router.settings.logs_dir).rows.iloc[-40:]
    assert set(rows["mode"]) == {"shadow"} and set(rows["shadow_version"]) == {"2"}
    set_config(router, mode="split")


def test_every_row_logs_the_champions_own_confidence_in_its_text_whichever_arm_answered(router):
    """TICKET_AB_LOG_CHAMPION_CONFIDENCE is on by default: the challenger's requests are scored by the champion too."""
    set_config(router, ab_split_b=0.5, mode="split")
    results = router.fire([{"text": f"{TEXTS[i % len(TEXTS)]}, case {i}", "customer_id": f"cupac-{i}"}
                           for i in range(200)])
    assert {status for status, _ in results} == {200}
    ids = [body["request_id"] for _, body in results]
    rows = read_requests(router.settings.logs_dir).rows.set_index("request_id").loc[ids]
    assert set(rows["variant"]) == {A, B}
    registry.connect(router.settings.tracking_uri)
    champion = registry.load_version(router.settings.model_name, "1")
    own = champion.predict_proba(pd.DataFrame({"text": rows["text"].tolist()})).max(axis=1)
    assert rows["champion_confidence"].between(0, 1).all()
    assert rows["champion_confidence"].to_numpy() == pytest.approx(own, abs=1e-5)
    by_champion = rows["model_alias"] == CHAMPION
    assert (rows.loc[by_champion, "champion_confidence"] == rows.loc[by_champion, "confidence"]).all()


def test_feedback_over_http_is_appended_with_the_source_its_token_names(router):
    request_id = router.post("/predict", {"text": TEXTS[0]}).json()["request_id"]
    response = router.post("/feedback", {"request_id": request_id, "label": "network", "source": "it"},
                           token=FEEDBACK_TOKEN)
    assert response.status_code == 202
    rows = read_feedback(router.settings.logs_dir).rows
    assert [tuple(r) for r in rows[["request_id", "label", "source"]].itertuples(index=False)][-1] == (
        request_id, "network", "api")  # the single feedback token is source "api"; the body's "it" is ignored


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("{not json", "application/json", 400), ('{"text": "vpn"}', "text/plain", 415),
    (json.dumps({"text": "x" * 70_000}), "application/json", 413), ('{"text": 5}', "application/json", 422)])
def test_bad_input_over_http_is_a_json_error(router, data: str, content_type: str, status: int):
    response = requests.post(router.url + "/predict", data=data, timeout=30,
                             headers={"Content-Type": content_type, "Connection": "close"})
    assert response.status_code == status
    assert set(response.json()) == {"error", "message"}


def test_unknown_route_over_http_is_404_json(router):
    response = router.get("/admin")
    assert (response.status_code, response.json()["error"]) == (404, "not_found")


def test_router_does_not_import_pycaret_airflow_evidently_or_cleanlab(router):
    script = (
        "import json, sys\n"
        "from router import create_app\n"
        "app = create_app()\n"
        "response = app.test_client().post('/predict', json={'text': 'vpn drops'})\n"
        "assert response.status_code == 200, response.get_data(as_text=True)\n"
        "app.extensions['ticket_ab'].store.stop()\n"
        "heavy = ('pycaret', 'airflow', 'evidently', 'cleanlab')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    # -P: the router home holds a `router/` data directory, which must not shadow the installed package.
    result = subprocess.run([sys.executable, "-P", "-c", script], env=child_env(router.settings, secrets=True),
                            capture_output=True, text=True, timeout=120, cwd=str(router.settings.home))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
