"""GET/POST /config: the A/B switch, its admin-token guard, and validation of the split and mode."""

from __future__ import annotations

import json
import time

import pytest

from router import create_app, inputs
from router.config import ABConfig
from tests.unit.router.router_testkit import ADMIN_TOKEN, FEEDBACK_TOKEN


def test_get_config_returns_the_default_split(client):
    assert client.get("/config").get_json() == {"ab_split_b": 0.5, "mode": "split", "updated_at": None,
                                                "updated_by": "default"}


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


def test_config_survives_a_restart(settings, store, admin):
    create_app(settings, store=store).test_client().post("/config", json={"ab_split_b": 0.8}, headers=admin)
    assert json.loads((settings.router_dir / "config.json").read_text())["ab_split_b"] == 0.8
    restarted = create_app(settings, store=store).test_client()
    assert restarted.get("/config").get_json()["ab_split_b"] == 0.8


def test_config_change_reaches_another_worker_within_one_second(settings, store, admin):
    worker_1 = create_app(settings, store=store).test_client()
    worker_2 = create_app(settings, store=store).test_client()
    assert worker_2.get("/config").get_json()["ab_split_b"] == 0.5
    changed = time.monotonic()
    worker_1.post("/config", json={"ab_split_b": 0.1}, headers=admin)
    while worker_2.get("/config").get_json()["ab_split_b"] != 0.1:
        assert time.monotonic() - changed < 1.0
        time.sleep(0.02)


@pytest.mark.parametrize("value", [1.5, 1.0000001, 100])
def test_config_rejects_split_above_one(client, admin, expect_error, value: float):
    expect_error(client.post("/config", json={"ab_split_b": value}, headers=admin), 422, "invalid_field",
                 "'ab_split_b'", "between 0 and 1")


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
    real = inputs.hmac.compare_digest
    monkeypatch.setattr(inputs.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert client.post("/config", json={"ab_split_b": 0.4}, headers=admin).status_code == 200
    assert calls == [(ADMIN_TOKEN.encode(), ADMIN_TOKEN.encode())]


def test_config_checks_the_token_before_reading_the_body(client, expect_error):
    response = client.post("/config", data="not json", content_type="text/plain")
    expect_error(response, 401, "unauthorized")


def test_default_split_comes_from_settings(make_settings, store):
    client = create_app(make_settings(router={"split_b": 0.25}), store=store).test_client()
    assert client.get("/config").get_json()["ab_split_b"] == ABConfig(0.25).ab_split_b
