"""POST /predict with `tickets`: many tickets per request, each answered and logged as a single one."""

from __future__ import annotations

import pandas as pd
import pytest

from ticket_ab.names import A
from ticket_ab.requestlog import read_requests

TICKETS = [{"text": "vpn drops every hour and the wifi is slow", "customer_id": "c-1"},
           {"text": "invoice charged twice, please refund the payment", "customer_id": "c-2"},
           {"text": "my laptop battery and the monitor are broken"}]


def set_split(app, split_b: float) -> None:
    app.extensions["ticket_ab"].config.update(ab_split_b=split_b, mode="split", updated_by="test")


def test_a_batch_answers_each_ticket_in_order_like_a_single_predict(app, client, champion_model):
    set_split(app, 0.0)
    results = client.post("/predict", json={"tickets": TICKETS}).get_json()["results"]
    singles = [client.post("/predict", json=ticket).get_json() for ticket in TICKETS]
    frame = pd.DataFrame({"text": [t["text"] for t in TICKETS]})
    assert [r["topic"] for r in results] == list(champion_model.pipeline.predict(frame))
    for batched, single in zip(results, singles, strict=True):  # batched: predict_proba; single: compiled scorer
        assert batched["scores"] == pytest.approx(single["scores"], abs=1e-5)
    assert [set(r) for r in results] == [set(s) for s in singles]
    assert {r["variant"] for r in results} == {A}


def test_every_ticket_of_a_batch_gets_its_own_row_and_request_id(client, settings):
    results = client.post("/predict", json={"tickets": TICKETS}).get_json()["results"]
    logged = read_requests(settings.logs_dir).rows
    assert list(logged["request_id"]) == [r["request_id"] for r in results]
    assert len(set(logged["request_id"])) == len(TICKETS)
    assert list(logged["variant"]) == [r["variant"] for r in results]
    assert list(logged["customer_id"].fillna("")) == ["c-1", "c-2", ""]


def test_a_customer_gets_the_same_arm_in_a_batch_as_alone(client):
    customers = [f"c-{i}" for i in range(30)]
    batch = client.post("/predict", json={"tickets": [{"text": "vpn", "customer_id": c} for c in customers]})
    alone = [client.post("/predict", json={"text": "vpn", "customer_id": c}).get_json()["variant"] for c in customers]
    assert [r["variant"] for r in batch.get_json()["results"]] == alone


def test_a_client_request_id_in_a_batch_is_kept(client):
    results = client.post("/predict", json={"tickets": [{"text": "vpn", "request_id": "crm-7"}]}).get_json()["results"]
    assert results[0]["request_id"] == "crm-7"


def test_a_batch_over_the_cap_is_413_naming_the_cap(client, settings, expect_error):
    cap = settings.router.max_batch
    response = client.post("/predict", json={"tickets": [{"text": "vpn"}] * (cap + 1)})
    expect_error(response, 413, "batch_too_large", str(cap), "TICKET_AB_MAX_BATCH")


def test_a_batch_of_exactly_the_cap_is_answered(client, settings):
    cap = settings.router.max_batch
    assert len(client.post("/predict", json={"tickets": [{"text": "vpn"}] * cap}).get_json()["results"]) == cap


def test_a_batch_larger_than_a_single_request_may_be_is_accepted(client, settings):
    text = "printer " * 100
    tickets = [{"text": text}] * (settings.router.max_body_bytes // len(text) + 10)
    assert client.post("/predict", json={"tickets": tickets}).status_code == 200


@pytest.mark.parametrize(("tickets", "mentions"), [
    ([], ["no tickets"]),
    ("vpn", ["'tickets'", "array"]),
    ([{"text": "vpn"}, "printer"], ["ticket 1", "object"]),
    ([{"text": "vpn"}, {"customer_id": "c-1"}], ["ticket 1", "'text'"]),
    ([{"text": "vpn", "customer_id": 1.5}], ["ticket 0", "'customer_id'"]),
])
def test_a_bad_batch_is_422_naming_the_ticket_and_logs_nothing(client, settings, expect_error, tickets, mentions):
    response = client.post("/predict", json={"tickets": tickets})
    expect_error(response, 422, response.get_json()["error"], *mentions)
    assert read_requests(settings.logs_dir).rows.empty


def test_text_and_tickets_together_are_refused(client, expect_error):
    expect_error(client.post("/predict", json={"text": "vpn", "tickets": [{"text": "vpn"}]}), 422, "invalid_field",
                 "'text'", "'tickets'")


def test_a_too_long_text_in_a_batch_is_413_naming_the_ticket(client, settings, expect_error):
    tickets = [{"text": "vpn"}, {"text": "v" * (settings.router.max_text_chars + 1)}]
    expect_error(client.post("/predict", json={"tickets": tickets}), 413, "text_too_long", "ticket 1")


def test_a_failing_challenger_in_a_batch_leaves_every_ticket_answered_by_the_champion(app, client, settings, store,
                                                                                    exploding_challenger):
    store.set(challenger=exploding_challenger)
    set_split(app, 1.0)
    results = client.post("/predict", json={"tickets": TICKETS}).get_json()["results"]
    assert {(r["variant"], r["model_alias"]) for r in results} == {("B", "champion")}
    logged = read_requests(settings.logs_dir).rows
    assert set(logged["fallback"]) == {"challenger_error:RuntimeError"}


def test_shadow_mode_scores_a_batch_with_both_models(app, client, settings):
    app.extensions["ticket_ab"].config.update(ab_split_b=0.5, mode="shadow", updated_by="test")
    results = client.post("/predict", json={"tickets": TICKETS}).get_json()["results"]
    assert {r["model_alias"] for r in results} == {"champion"}
    assert set(read_requests(settings.logs_dir).rows["shadow_version"]) == {"2"}
