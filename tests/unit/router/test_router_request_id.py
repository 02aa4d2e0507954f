"""POST /predict with the client's own request_id: the idempotency key a retrying client sends again."""

from __future__ import annotations

import pytest

from ticket_ab.requestlog import read_requests

VPN = {"text": "vpn drops every hour and the wifi is slow"}


@pytest.mark.parametrize("request_id", ["r", "client-7:batch.3_retry-0", "A" * 64, "2026-11-24T10:00:00.123Z"])
def test_a_client_request_id_is_echoed_and_logged_instead_of_a_fresh_one(client, settings, request_id: str):
    response = client.post("/predict", json=VPN | {"request_id": request_id})
    assert response.status_code == 200
    assert response.get_json()["request_id"] == request_id
    read = read_requests(settings.logs_dir)
    assert read.malformed == 0
    assert list(read.rows["request_id"]) == [request_id]


def test_without_a_request_id_or_with_null_the_router_makes_a_fresh_one(client):
    ids = [client.post("/predict", json=VPN | extra).get_json()["request_id"] for extra in ({}, {"request_id": None})]
    assert all(len(each) == 32 for each in ids) and ids[0] != ids[1]


def test_a_retry_with_the_same_request_id_gets_the_same_id_and_arm(client, settings):
    payload = VPN | {"request_id": "retry-me", "customer_id": "c-5"}
    first, again = (client.post("/predict", json=payload).get_json() for _ in range(2))
    assert (first["request_id"], first["variant"]) == (again["request_id"], again["variant"])
    assert set(read_requests(settings.logs_dir).rows["request_id"]) == {"retry-me"}


@pytest.mark.parametrize(("request_id", "expected"), [
    ("", "1 to 64 characters"),
    ("A" * 65, "1 to 64 characters"),
    ("has space", "1 to 64 characters"),
    (" padded", "1 to 64 characters"),
    ("semi;colon", "1 to 64 characters"),
    ("slash/es", "1 to 64 characters"),
    ("ünïcode", "1 to 64 characters"),
    ("line\nbreak", "1 to 64 characters"),
    (42, "must be a string, got number"),
    (["r-1"], "must be a string, got array"),
    (True, "must be a string, got boolean"),
])
def test_an_invalid_request_id_is_422_naming_the_field_and_writes_no_row(client, settings, expect_error,
                                                                         request_id: object, expected: str):
    response = client.post("/predict", json=VPN | {"request_id": request_id})
    expect_error(response, 422, "invalid_field", "'request_id'", expected)
    assert read_requests(settings.logs_dir).rows.empty


def test_a_500_names_the_client_request_id_to_grep_for(app, client, store, exploding_challenger, expect_error):
    store.set(champion=exploding_challenger)
    app.extensions["ticket_ab"].config.update(ab_split_b=0.0, mode="split", updated_by="test")
    expect_error(client.post("/predict", json=VPN | {"request_id": "grep-me-42"}), 500, "internal_error",
                 "grep-me-42")
