"""Client credentials through a real gunicorn router (2 workers): no answer without a client token, and
an integration that floods customers it picked for arm A is throttled (429) and cannot move the
sample-ratio figure of the others.

The attacker knows what any client of the router can know: the experiment id (GET /config) and the
public assignment hash, so it sends only customers that land in arm A.
"""

from __future__ import annotations

import time

import pytest
import requests

from analysis.experiment import analyse
from ops.health import wait_until
from router.assign import assign
from tests.integration.router.router_harness import register, router_settings, start_router, stop_router
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab.names import A
from ticket_ab.requestlog import read_feedback, read_requests

NAME = "router-clients"
TOKENS = {"desk": "desk-client-token", "attacker": "attacker-client-token"}
RATE, BURST = 20.0, 8  # tickets/s per integration on the replica; tickets a worker lets through at once


@pytest.fixture(scope="module")
def guarded(module_home, mlflow_server):
    settings = router_settings(module_home, mlflow_server.uri, NAME, max_batch=BURST, client_rate=RATE,
                               client_burst=BURST, client_tokens=",".join(f"{n}:{t}" for n, t in TOKENS.items()))
    register(settings, fitted_pipeline(seed=0), "champion")
    register(settings, fitted_pipeline(seed=1, per_topic=20), "challenger")
    router = start_router(settings)
    yield router
    stop_router(router)


def polite(router, session: requests.Session, payload: dict, token: str, deadline_s: float = 30.0) -> dict:
    """POST /predict as a well-behaved integration: after a 429, wait its Retry-After and send again."""

    def sent() -> dict | None:
        response = session.post(router.url + "/predict", json=payload, headers={"Authorization": f"Bearer {token}"},
                                timeout=30)
        if response.status_code == 429:
            time.sleep(float(response.headers["Retry-After"]))
            return None
        assert response.status_code == 200, response.text
        return response.json()

    return wait_until(sent, deadline_s, "the desk's request is answered", interval_s=0)


def test_an_anonymous_client_gets_no_answer_where_client_tokens_are_set(guarded):
    for path, body in (("/predict", {"text": "vpn drops"}), ("/invocations", {"inputs": {"text": ["vpn drops"]}})):
        response = guarded.post(path, body)
        assert response.status_code == 401, response.text
        assert "TICKET_AB_CLIENT_TOKEN" in response.json()["message"]
    assert guarded.post("/predict", {"text": "vpn drops"}, token="not-a-client-token").status_code == 401


def test_a_flood_from_one_integration_is_throttled_and_does_not_move_the_others_srm(guarded):
    config = guarded.get("/config").json()
    with requests.Session() as session:
        desk = [polite(guarded, session, {"text": "vpn drops", "customer_id": f"desk-{i}"}, TOKENS["desk"])
                for i in range(80)]
    assert {answer["variant"] for answer in desk} == {"A", "B"}
    picked = [c for c in (f"atk-{i}" for i in range(3000))
              if assign(c, config["ab_split_b"], config["experiment_id"]) == A][:400]
    started = time.monotonic()
    flood = guarded.fire([{"text": "vpn drops", "customer_id": c} for c in picked], token=TOKENS["attacker"])
    elapsed = time.monotonic() - started
    statuses = [status for status, _ in flood]
    admitted = statuses.count(200)
    assert statuses.count(429) + admitted == len(picked) and statuses.count(429) > len(picked) // 2
    assert admitted <= guarded.settings.router.workers * BURST + RATE * elapsed + 1
    assert all("TICKET_AB_CLIENT_RATE" in body["message"] for status, body in flood if status == 429)
    assert all(body["variant"] == A for status, body in flood if status == 200), "the attacker picked arm A"
    with requests.Session() as keep_alive:  # one connection, one worker: faster than its share of the rate refills
        again = (keep_alive.post(guarded.url + "/predict", json={"text": "vpn drops", "customer_id": c}, timeout=30,
                                 headers={"Authorization": f"Bearer {TOKENS['attacker']}"}) for c in picked)
        refused = next(r for r in again if r.status_code != 200)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1

    logs = guarded.settings.logs_dir
    rows, feedback = read_requests(logs).rows, read_feedback(logs).rows
    assert set(rows["integration"]) == {"desk", "attacker"}
    with_flood = analyse(rows, feedback).summary["srm"]
    without = analyse(rows[rows["integration"] != "attacker"], feedback).summary["srm"]
    assert with_flood["by_integration"]["attacker"]["flagged"] and with_flood["excluded"] == ["attacker"]
    assert (with_flood["observed"], with_flood["p_value"]) == (without["observed"], without["p_value"])
    assert with_flood["observed"] == with_flood["by_integration"]["desk"]["observed"]

    scraped = guarded.get("/metrics").text
    assert 'ticket_ab_client_requests_total{integration="attacker",status="429"}' in scraped
