"""Client credentials on the scoring endpoints: a token per integration, anonymous access only where
allowed, a rate limit per integration, and the integration counted and logged."""

from __future__ import annotations

import pytest

from router import create_app, metrics
from router.clients import ANONYMOUS, TokenBucket, for_settings
from tests.unit.router.router_testkit import MemoryStore
from ticket_ab.requestlog import read_requests

DESK, BOT = "desk-token", "bot-token"
TICKET = {"text": "vpn drops every hour", "customer_id": "C-1"}
INFER = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["vpn drops"]}]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_client(make_settings, champion_model, challenger_model):
    """A test client for a router with the given router settings (client tokens for desk and bot by default)."""
    apps = []

    def make(**router):
        values = {"client_tokens": f"desk:{DESK},bot:{BOT}", "split_b": 0.5, **router}
        settings = make_settings(router=values, model_name="ticket-classifier")
        app = create_app(settings, store=MemoryStore(champion_model, challenger_model, settings))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["ticket_ab"].requests.close()


def _count(integration: str, status: str) -> float:
    return metrics.CLIENT_REQUESTS.labels(integration=integration, status=status)._value.get()


def test_without_a_client_token_a_router_with_tokens_answers_401_naming_the_settings(make_client, expect_error):
    client = make_client()
    for path, body in (("/predict", TICKET), ("/invocations", {"inputs": {"text": ["vpn"]}}),
                       ("/v2/models/ticket-classifier/infer", INFER)):
        response = client.post(path, json=body)
        expect_error(response, 401, "unauthorized", "TICKET_AB_CLIENT_TOKEN", "TICKET_AB_ALLOW_ANONYMOUS")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_401_even_where_anonymous_requests_are_allowed(make_client, expect_error):
    client = make_client(allow_anonymous=True)
    body = expect_error(client.post("/predict", json=TICKET, headers=bearer("guess")), 401, "unauthorized")
    assert "guess" not in body["message"]
    assert client.post("/predict", json=TICKET).status_code == 200


def test_the_token_decides_the_integration_logged_and_counted(make_client, tmp_path):
    client = make_client(allow_anonymous=True)
    before = {name: _count(name, "200") for name in ("desk", "bot", ANONYMOUS)}
    ids = {name: client.post("/predict", json=TICKET, headers=headers).get_json()["request_id"]
           for name, headers in (("desk", bearer(DESK)), ("bot", bearer(BOT)), (ANONYMOUS, {}))}
    rows = read_requests(tmp_path / "home" / "logs").rows.set_index("request_id")
    assert {name: rows.loc[request_id, "integration"] for name, request_id in ids.items()} == {
        "desk": "desk", "bot": "bot", ANONYMOUS: ANONYMOUS}
    assert all(_count(name, "200") == before[name] + 1 for name in before)


def test_a_router_without_client_tokens_is_open_and_counts_everything_as_anonymous(make_client):
    client = make_client(client_tokens="")
    answer = client.post("/predict", json=TICKET, headers=bearer("anything"))
    assert answer.status_code == 200


def test_an_integration_over_its_rate_is_429_with_retry_after_and_the_others_are_not(make_client, expect_error):
    client = make_client(client_rate=0.5, client_burst=2, max_batch=2, workers=1)
    batch = {"tickets": [TICKET, TICKET]}
    assert client.post("/predict", json=batch, headers=bearer(DESK)).status_code == 200
    refused = client.post("/predict", json=TICKET, headers=bearer(DESK))
    expect_error(refused, 429, "rate_limited", "'desk'", "TICKET_AB_CLIENT_RATE", "0.5 tickets/s")
    assert int(refused.headers["Retry-After"]) == 2, "one ticket at 0.5 tickets/s"
    assert client.post("/predict", json=TICKET, headers=bearer(BOT)).status_code == 200


def test_the_limit_is_the_replicas_divided_among_its_workers(make_settings):
    clients = for_settings(make_settings(router={"client_tokens": f"desk:{DESK}", "client_rate": 90.0,
                                                 "workers": 3}).router)
    assert {name: bucket.rate for name, bucket in clients.buckets.items()} == {"desk": 30.0, ANONYMOUS: 30.0}


def test_a_bucket_refills_at_its_rate_up_to_its_capacity(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("router.clients.time.monotonic", lambda: now[0])
    bucket = TokenBucket(rate=4.0, capacity=2.0)
    assert bucket.take(2) == 0.0
    assert bucket.take(1) == pytest.approx(0.25)
    now[0] += 0.25
    assert bucket.take(1) == 0.0
    now[0] += 60.0
    assert bucket.take(2) == 0.0 and bucket.take(1) > 0, "it never holds more than its capacity"


@pytest.mark.parametrize("setting", ["desk", "desk:", ":tok", "anonymous:tok", f"a:{DESK},b:{DESK}"])
def test_a_malformed_client_token_setting_stops_the_router(make_settings, setting: str):
    with pytest.raises(ValueError, match="TICKET_AB_CLIENT_TOKENS"):
        for_settings(make_settings(router={"client_tokens": setting}).router)


def test_the_document_says_the_scoring_endpoints_take_a_bearer_token_a_router_may_not_require(make_client):
    document = make_client().get("/openapi.json").get_json()
    for path in ("/predict", "/invocations", "/v2/models/{name}/infer"):
        operation = document["paths"][path]["post"]
        assert operation["security"] == [{"bearer": []}, {}], path
        assert {"401", "429"} <= set(operation["responses"]), path
