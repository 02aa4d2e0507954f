"""GET/POST /config: the A/B switch shared by every replica, its admin-token guard, its compare-and-swap
(ETag and If-Match), and validation."""

from __future__ import annotations

import json
import re

import pytest

from router import auth, create_app
from router.config import CACHE_FILE
from router.configdb import ConfigTable
from tests.unit.router.router_testkit import ADMIN_TOKEN, FEEDBACK_TOKEN, MemoryStore


@pytest.fixture
def replica(make_settings, tmp_path, registry, champion_model, challenger_model):
    """Another router: its own state dir, the same registered model in the same registry."""

    def start(name: str):
        settings = make_settings(home=tmp_path / name, model_name="shared-model",
                                 router={"admin_token": ADMIN_TOKEN, "config_store": f"sqlite:///{tmp_path}/config.db"},
                                 rollout={"start": "configured"})
        store = MemoryStore(champion_model, challenger_model, settings, registry)
        return store, create_app(settings, store=store).test_client()

    return start


def test_get_config_returns_the_default_split_an_experiment_id_and_the_version_as_etag(client):
    response = client.get("/config")
    body = response.get_json()
    assert re.fullmatch(r"[0-9a-f]{12}", body.pop("experiment_id"))
    assert body == {"ab_split_b": 0.5, "mode": "split", "updated_at": None, "updated_by": "default", "version": 0,
                    "challenger": None, "started_at": None}
    assert response.headers["ETag"] == '"0"'


def test_post_config_with_the_etag_it_read_applies_and_answers_the_next_etag(client):
    token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    etag = client.get("/config").headers["ETag"]
    response = client.post("/config", json={"ab_split_b": 0.3}, headers=token | {"If-Match": etag})
    assert response.status_code == 200 and response.headers["ETag"] == '"1"' == client.get("/config").headers["ETag"]


def test_post_config_with_an_etag_that_is_gone_is_412_naming_the_current_one(client, expect_error):
    token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client.post("/config", json={"ab_split_b": 0.3}, headers=token | {"If-Match": '"0"'})
    for stale in ('"0"', 'W/"1"', '"one"', '"¹"', "not-a-tag"):
        response = client.post("/config", json={"ab_split_b": 0.9}, headers=token | {"If-Match": stale})
        expect_error(response, 412, "precondition_failed", 'now "1"', "GET /config")
        assert response.headers["ETag"] == '"1"'
    assert client.get("/config").get_json()["ab_split_b"] == 0.3


def test_post_config_without_if_match_is_428_and_changes_nothing(client, expect_error):
    response = client.post("/config", json={"ab_split_b": 0.3}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    expect_error(response, 428, "precondition_required", "If-Match", '"0"', "If-Match: *")
    assert client.get("/config").get_json()["ab_split_b"] == 0.5


def test_post_config_changes_split_and_mode(client, admin):
    response = client.post("/config", json={"ab_split_b": 0.3, "mode": "shadow", "updated_by": "anna"}, headers=admin)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["ab_split_b"], body["mode"], body["updated_by"]) == (0.3, "shadow", "anna")
    assert client.get("/config").get_json() == body


def test_post_config_with_only_the_mode_keeps_the_split(client, admin):
    client.post("/config", json={"ab_split_b": 0.2}, headers=admin)
    body = client.post("/config", json={"mode": "shadow"}, headers=admin).get_json()
    assert (body["ab_split_b"], body["mode"], body["updated_by"]) == (0.2, "shadow", "api")


def test_post_config_writes_the_store_and_the_disk_cache_and_nothing_to_the_registry(client, admin, registry,
                                                                                     settings, store):
    body = client.post("/config", json={"ab_split_b": 0.8}, headers=admin).get_json()
    assert json.loads(store.config._table.read().value)["ab_split_b"] == 0.8
    assert json.loads((settings.router_dir / CACHE_FILE).read_text()) == body
    assert registry.tags == {}


def test_config_survives_a_restart_even_while_the_registry_is_down(settings, registry, champion_model,
                                                                  challenger_model, admin):
    first = MemoryStore(champion_model, challenger_model, settings, registry)
    set_by_first = create_app(settings, store=first).test_client().post("/config", json={"ab_split_b": 0.8},
                                                                        headers=admin).get_json()
    registry.down = True
    restarted = MemoryStore(champion_model, challenger_model, settings, registry)
    restarted.config._table = _down()
    assert create_app(settings, store=restarted).test_client().get("/config").get_json() == set_by_first


def test_a_change_posted_to_one_replica_is_served_by_another_after_its_next_poll(replica):
    _, one = replica("one")
    two_store, two = replica("two")
    posted = one.post("/config", json={"ab_split_b": 0.1},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "If-Match": '"0"'})
    assert two.get("/config").get_json()["ab_split_b"] == 0.5
    two_store.refresh()
    assert two.get("/config").get_json() == posted.get_json()


def test_the_same_customer_gets_the_same_arm_from_every_replica(replica, admin):
    stores, clients = zip(*(replica(name) for name in ("one", "two", "three")), strict=True)
    clients[0].post("/config", json={"ab_split_b": 0.4}, headers=admin)
    for store in stores:
        store.refresh()
    arms = set()
    for i in range(40):
        ticket = {"text": "vpn drops", "customer_id": f"c-{i}"}
        served = {c.post("/predict", json=ticket).get_json()["variant"] for c in clients}
        assert len(served) == 1, f"customer c-{i} got {served}"
        arms |= served
    assert arms == {"A", "B"}


def _down() -> ConfigTable:
    def refuse():
        raise OSError("connection refused (test)")

    return ConfigTable(refuse, "shared-model", where="postgresql://router@db/config")


def test_post_config_while_the_store_is_down_is_503_and_changes_nothing(client, admin, store, expect_error):
    before = client.get("/config").get_json()
    store.config._table = _down()
    response = client.post("/config", json={"ab_split_b": 0.9}, headers=admin)
    expect_error(response, 503, "config_store_unavailable", "not changed", "postgresql://router@db/config", "refused")
    assert response.headers["Retry-After"]
    assert client.get("/config").get_json() == before


@pytest.mark.parametrize("value", [1.5, 1.0000001, 100])
def test_config_rejects_split_above_one(client, admin, expect_error, value: float):
    expect_error(client.post("/config", json={"ab_split_b": value}, headers=admin), 422, "invalid_field",
                 "'ab_split_b'", "at most 1")


def test_config_rejects_split_below_zero(client, admin, expect_error):
    expect_error(client.post("/config", json={"ab_split_b": -0.1}, headers=admin), 422, "invalid_field", "'ab_split_b'")


@pytest.mark.parametrize("value", ["0.3", True, None, [0.3], {"b": 0.3}])
def test_config_rejects_a_split_of_the_wrong_type(client, admin, expect_error, value: object):
    expect_error(client.post("/config", json={"ab_split_b": value}, headers=admin), 422, "invalid_field",
                 "'ab_split_b'", "must be a number")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_config_rejects_non_finite_splits(client, admin, expect_error, literal: str):
    response = client.post("/config", data=f'{{"ab_split_b": {literal}}}', content_type="application/json",
                           headers=admin)
    expect_error(response, 422, "invalid_field", "'ab_split_b'")


def test_config_rejects_an_unknown_mode(client, admin, expect_error):
    expect_error(client.post("/config", json={"mode": "canary"}, headers=admin), 422, "invalid_field", "'mode'",
                 "'shadow'")


def test_config_rejects_unknown_fields_so_typos_do_not_silently_do_nothing(client, admin, expect_error):
    expect_error(client.post("/config", json={"split_b": 0.3}, headers=admin), 422, "invalid_field", "split_b",
                 "ab_split_b")


def test_config_rejects_a_body_that_changes_nothing(client, admin, expect_error):
    expect_error(client.post("/config", json={}, headers=admin), 422, "missing_field", "ab_split_b", "mode")


def test_rejected_config_leaves_the_config_unchanged(client, admin):
    client.post("/config", json={"ab_split_b": 2}, headers=admin)
    assert client.get("/config").get_json()["ab_split_b"] == 0.5


def test_config_without_a_token_is_401_with_a_bearer_challenge(client, expect_error):
    response = client.post("/config", json={"ab_split_b": 0.3})
    expect_error(response, 401, "unauthorized", "Authorization: Bearer", "TICKET_AB_ADMIN_TOKEN")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [f"Bearer {ADMIN_TOKEN}x", f"Basic {ADMIN_TOKEN}", "Bearer", "Bearer  ",
                                    f"Bearer {FEEDBACK_TOKEN}", "Bearer ключ-не-тот"])
def test_config_with_a_wrong_token_is_401_and_the_token_is_never_echoed(client, expect_error, header: str):
    body = expect_error(client.post("/config", json={"ab_split_b": 0.3}, headers={"Authorization": header}),
                        401, "unauthorized")
    assert ADMIN_TOKEN not in body["message"] and FEEDBACK_TOKEN not in body["message"]
    assert client.get("/config").get_json()["ab_split_b"] == 0.5


def test_config_refuses_with_403_when_no_admin_token_is_configured(make_settings, store, expect_error):
    client = create_app(make_settings(router={"admin_token": ""}), store=store).test_client()
    response = client.post("/config", json={"ab_split_b": 0.3}, headers={"Authorization": "Bearer anything"})
    expect_error(response, 403, "forbidden", "TICKET_AB_ADMIN_TOKEN")


def test_tokens_are_compared_in_constant_time(client, admin, monkeypatch):
    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert client.post("/config", json={"ab_split_b": 0.4}, headers=admin).status_code == 200
    assert calls == [(ADMIN_TOKEN.encode(), ADMIN_TOKEN.encode())]


def test_config_checks_the_token_before_reading_the_body(client, expect_error):
    response = client.post("/config", data="not json", content_type="text/plain")
    expect_error(response, 401, "unauthorized")


def test_default_split_comes_from_settings(make_settings, registry, champion_model, challenger_model):
    settings = make_settings(router={"split_b": 0.25}, rollout={"start": "configured"})
    store = MemoryStore(champion_model, challenger_model, settings, registry)
    assert create_app(settings, store=store).test_client().get("/config").get_json()["ab_split_b"] == 0.25


def test_a_challenger_no_change_named_starts_at_the_first_ramp_step_whatever_split_was_set(
        make_settings, registry, champion_model, challenger_model, admin):
    settings = make_settings(router={"split_b": 0.5, "admin_token": ADMIN_TOKEN},
                             rollout={"steps": "0.1,0.5", "start": "step"})
    client = create_app(settings, store=MemoryStore(champion_model, challenger_model, settings, registry)).test_client()
    served = client.get("/config").get_json()
    assert (served["ab_split_b"], served["challenger"], served["updated_by"]) == (0.1, "2", "rollout policy")
    client.post("/config", json={"ab_split_b": 0.5}, headers=admin)
    assert client.get("/config").get_json()["ab_split_b"] == 0.5
    client.post("/config", json={"ab_split_b": 0.9, "challenger": "7"}, headers=admin)
    assert client.get("/config").get_json()["ab_split_b"] == 0.1, "a split set for v7 does not reach v2"


def test_the_shadow_start_serves_a_new_challenger_in_shadow_mode(make_settings, registry, champion_model,
                                                                 challenger_model):
    settings = make_settings(rollout={"start": "shadow"})
    client = create_app(settings, store=MemoryStore(champion_model, challenger_model, settings, registry)).test_client()
    assert client.get("/config").get_json()["mode"] == "shadow"
