"""POST /predict through the Flask test client: answers, assignment, fallbacks, the log, bad input."""

from __future__ import annotations

import json
import math
import re

import pytest

from router import records
from router.assign import assign
from ticket_ab.names import A, B
from ticket_ab.requestlog import read_requests

VPN = {"text": "vpn drops every hour and the wifi is slow"}
RESPONSE_KEYS = {"request_id", "variant", "model_alias", "model_version", "topic", "confidence", "scores", "latency_ms",
                 "logged", "topic_scores", "priority", "priority_confidence", "priority_scores", "priority_note"}


def set_split(app, split_b: float, mode: str = "split") -> None:
    app.extensions["ticket_ab"].config.update(ab_split_b=split_b, mode=mode, updated_by="test")


def rows(settings):
    read = read_requests(settings.logs_dir)
    assert read.malformed == 0
    return read.rows


def test_predict_answers_with_topic_scores_and_the_serving_version(client):
    response = client.post("/predict", json=VPN | {"customer_id": "c-1"})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == RESPONSE_KEYS
    assert body["topic"] == "network"
    assert (body["variant"], body["model_alias"], body["model_version"]) in {(A, "champion", "1"),
                                                                            (B, "challenger", "2")}
    assert math.isclose(sum(body["scores"].values()), 1.0, abs_tol=1e-4)
    assert body["confidence"] == max(body["scores"].values())
    assert body["latency_ms"] > 0
    assert len(body["request_id"]) == 32


def test_every_request_writes_one_row_with_masked_one_line_text(client, settings):
    text = "VPN down.\nCall me: +7 (912) 345-67-89 or anna.k@example.com,\ncard 4111 1111 1111 1111 (ERR-4012)"
    ids = [client.post("/predict", json={"text": text, "ticket_id": f"T-{i}"}).get_json()["request_id"]
           for i in range(3)]
    logged = rows(settings)
    assert list(logged["request_id"]) == ids
    first = logged.iloc[0]
    assert first["text"] == "VPN down. Call me: [PII_PHONE] or [PII_EMAIL], card [PII_CARD] (ERR-4012)"
    assert (first["ticket_id"], first["split_b"], first["mode"]) == ("T-0", 0.5, "split")
    assert first["fallback"] == "" and first["shadow_version"] == ""


def test_logged_row_matches_the_response(client, settings):
    body = client.post("/predict", json=VPN | {"customer_id": "c-42"}).get_json()
    row = rows(settings).iloc[-1]
    assert (row["request_id"], row["variant"], row["model_alias"], row["model_version"], row["topic"]) == (
        body["request_id"], body["variant"], body["model_alias"], body["model_version"], body["topic"])
    assert row["confidence"] == pytest.approx(body["confidence"])
    assert row["latency_ms"] == pytest.approx(body["latency_ms"])
    assert row["customer_id"] == "c-42"


def test_every_row_records_the_experiment_it_was_served_under(app, client, settings):
    first = client.get("/config").get_json()["experiment_id"]
    client.post("/predict", json=VPN)
    set_split(app, 0.3, mode="shadow")
    second = client.get("/config").get_json()["experiment_id"]
    client.post("/predict", json=VPN)
    assert list(rows(settings)["experiment_id"]) == [first, second]
    assert first != second


@pytest.mark.parametrize("customer", ["anna.k@example.com", "+7 912 345-67-89", "(415) 555-0134"])
def test_a_customer_id_that_is_an_email_or_phone_is_logged_as_a_stable_keyed_pseudonym(client, settings,
                                                                                      customer: str):
    bodies = [client.post("/predict", json=VPN | {"customer_id": customer}).get_json() for _ in range(2)]
    logged = rows(settings)
    (pseudonym,) = set(logged["customer_id"])
    assert re.fullmatch(r"cust-[0-9a-f]{16}", pseudonym)
    assert not logged.astype(str).apply(lambda column: column.str.contains(customer, regex=False)).any().any()
    experiment = client.get("/config").get_json()["experiment_id"]
    assert {b["variant"] for b in bodies} == {assign(customer, 0.5, experiment)}, "assignment uses the raw id"


def test_the_pseudonym_depends_on_the_key():
    one, two = (records.logged_customer("anna.k@example.com", records.customer_key(key)) for key in ("k-1", "k-2"))
    assert one != two and one.startswith("cust-") and "anna" not in one + two


def test_same_customer_always_gets_the_same_variant(client):
    for customer in ("c-1", "c-2", "c-3", "c-4", "c-5", "c-6"):
        variants = {client.post("/predict", json=VPN | {"customer_id": customer}).get_json()["variant"]
                    for _ in range(8)}
        assert len(variants) == 1


def test_customer_id_decides_the_arm_even_when_ticket_ids_differ(client):
    variants = {client.post("/predict", json=VPN | {"customer_id": "c-9", "ticket_id": f"T-{i}"}).get_json()["variant"]
                for i in range(10)}
    assert len(variants) == 1


def test_both_arms_serve_traffic_at_an_even_split(client):
    variants = {client.post("/predict", json=VPN | {"customer_id": f"c-{i}"}).get_json()["variant"] for i in range(40)}
    assert variants == {A, B}


def test_split_one_sends_every_request_to_the_challenger(app, client):
    set_split(app, 1.0)
    bodies = [client.post("/predict", json=VPN | {"customer_id": f"c-{i}"}).get_json() for i in range(20)]
    assert {(b["variant"], b["model_alias"], b["model_version"]) for b in bodies} == {(B, "challenger", "2")}


def test_split_zero_sends_every_request_to_the_champion(app, client):
    set_split(app, 0.0)
    bodies = [client.post("/predict", json=VPN).get_json() for _ in range(20)]
    assert {(b["variant"], b["model_alias"]) for b in bodies} == {(A, "champion")}


def test_without_a_challenger_all_traffic_goes_to_the_champion(app, client, store):
    store.set(challenger=None)
    set_split(app, 1.0)
    bodies = [client.post("/predict", json=VPN | {"customer_id": f"c-{i}"}).get_json() for i in range(20)]
    assert {(b["variant"], b["model_alias"], b["model_version"]) for b in bodies} == {(A, "champion", "1")}


def test_predict_without_champion_is_503_with_message(client, store, expect_error):
    store.set(champion=None)
    response = client.post("/predict", json=VPN)
    expect_error(response, 503, "no_champion", "'memory'", "alias 'champion'")
    assert response.headers["Retry-After"] == "10"


def test_predict_without_champion_while_the_registry_is_down_says_to_start_mlflow(client, store, expect_error):
    store.set(champion=None)
    store.reachable = False
    expect_error(client.post("/predict", json=VPN), 503, "no_champion", "unreachable", "MLFLOW_TRACKING_URI")


def test_challenger_error_serves_champion_and_logs_fallback(app, client, settings, store, exploding_challenger):
    store.set(challenger=exploding_challenger)
    set_split(app, 1.0)
    body = client.post("/predict", json=VPN).get_json()
    assert (body["variant"], body["model_alias"], body["model_version"], body["topic"]) == (
        B, "champion", "1", "network")
    row = rows(settings).iloc[-1]
    assert row["fallback"] == "challenger_error:RuntimeError"
    assert (row["variant"], row["model_alias"]) == (B, "champion")


def test_shadow_mode_answers_with_the_champion_and_logs_both_predictions(app, client, settings):
    set_split(app, 1.0, mode="shadow")
    bodies = [client.post("/predict", json=VPN | {"customer_id": f"c-{i}"}).get_json() for i in range(10)]
    assert {(b["variant"], b["model_alias"]) for b in bodies} == {(A, "champion")}
    logged = rows(settings)
    assert set(logged["mode"]) == {"shadow"}
    assert set(logged["shadow_version"]) == {"2"}
    assert set(logged["shadow_topic"]) == {"network"}
    assert logged["shadow_confidence"].between(0, 1).all()


def test_shadow_challenger_error_is_logged_and_the_answer_is_unaffected(app, client, settings, store,
                                                                      exploding_challenger):
    store.set(challenger=exploding_challenger)
    set_split(app, 0.5, mode="shadow")
    response = client.post("/predict", json=VPN)
    assert response.status_code == 200
    row = rows(settings).iloc[-1]
    assert (row["model_alias"], row["fallback"], row["shadow_version"]) == ("champion", "challenger_error:RuntimeError",
                                                                           "")


def test_integer_ids_are_accepted_and_logged_as_text(client, settings):
    assert client.post("/predict", json=VPN | {"customer_id": 1234, "ticket_id": 987}).status_code == 200
    row = rows(settings).iloc[-1]
    assert (row["customer_id"], row["ticket_id"]) == ("1234", "987")


def test_text_of_exactly_the_character_limit_is_accepted(client, settings):
    assert client.post("/predict", json={"text": "v" * settings.router.max_text_chars}).status_code == 200


# Bad input: never a 500, never HTML, always a message naming the problem.

def test_predict_rejects_invalid_json_with_400(client, expect_error):
    response = client.post("/predict", data='{"text": "vpn", ', content_type="application/json")
    expect_error(response, 400, "invalid_json", "not valid JSON", "line 1")


def test_predict_rejects_an_empty_body_with_400(client, expect_error):
    expect_error(client.post("/predict", data="", content_type="application/json"), 400, "invalid_json")


def test_predict_rejects_invalid_utf8_with_400(client, expect_error):
    response = client.post("/predict", data=b'{"text": "\xff\xfe vpn"}', content_type="application/json")
    expect_error(response, 400, "invalid_json")


def test_predict_rejects_pathologically_nested_json_with_400(client, expect_error):
    response = client.post("/predict", data="[" * 30_000 + "]" * 30_000, content_type="application/json")
    expect_error(response, 400, "invalid_json")


@pytest.mark.parametrize("payload", ['["vpn"]', '"vpn"', "42", "null"])
def test_predict_rejects_json_that_is_not_an_object_with_400(client, expect_error, payload: str):
    response = client.post("/predict", data=payload, content_type="application/json")
    expect_error(response, 400, "invalid_json", "JSON object")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_predict_rejects_a_non_json_content_type_with_415(client, expect_error, content_type: str | None):
    response = client.post("/predict", data=json.dumps(VPN), content_type=content_type)
    expect_error(response, 415, "unsupported_media_type", "Content-Type: application/json")


def test_predict_accepts_json_with_a_charset_parameter(client):
    response = client.post("/predict", data=json.dumps(VPN), content_type="application/json; charset=utf-8")
    assert response.status_code == 200


def test_predict_rejects_missing_text_with_422_naming_the_field(client, expect_error):
    expect_error(client.post("/predict", json={"ticket_id": "T-1"}), 422, "missing_field", "'text'")


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_predict_rejects_empty_text_with_422(client, expect_error, text: str):
    expect_error(client.post("/predict", json={"text": text}), 422, "invalid_field", "'text'", "empty")


@pytest.mark.parametrize(("text", "kind"), [(42, "number"), (["vpn"], "array"), ({"a": 1}, "object"),
                                            (True, "boolean")])
def test_predict_rejects_non_string_text_with_422(client, expect_error, text: object, kind: str):
    expect_error(client.post("/predict", json={"text": text}), 422, "invalid_field", "'text'", "string", kind)


@pytest.mark.parametrize(("field", "value"), [("customer_id", ["c"]), ("ticket_id", True), ("customer_id", ""),
                                              ("ticket_id", "T" * 201), ("customer_id", 1.5)])
def test_predict_rejects_bad_ids_with_422_naming_the_field(client, expect_error, field: str, value: object):
    expect_error(client.post("/predict", json=VPN | {field: value}), 422, "invalid_field", f"'{field}'")


def test_predict_rejects_a_body_over_64_kib_with_413(client, settings, expect_error):
    body = json.dumps({"text": "vpn", "pad": "x" * settings.router.max_body_bytes})
    response = client.post("/predict", data=body, content_type="application/json")
    expect_error(response, 413, "payload_too_large", str(settings.router.max_body_bytes))


def test_predict_rejects_an_oversized_body_without_content_length_with_413(client, settings, expect_error):
    body = json.dumps({"text": "x" * (settings.router.max_body_bytes + 10)}).encode()
    response = client.post("/predict", input_stream=__import__("io").BytesIO(body), content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    expect_error(response, 413, "payload_too_large")


def test_predict_rejects_text_over_20000_characters_with_413(client, settings, expect_error):
    response = client.post("/predict", json={"text": "v" * (settings.router.max_text_chars + 1)})
    expect_error(response, 413, "text_too_long", "'text'", str(settings.router.max_text_chars))


def test_rejected_requests_write_no_rows(client, settings):
    client.post("/predict", json={"text": ""})
    client.post("/predict", data="{", content_type="application/json")
    assert read_requests(settings.logs_dir).rows.empty


def test_get_on_predict_is_405_json(client, expect_error):
    response = client.get("/predict")
    expect_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unknown_route_is_404_json(client, expect_error):
    expect_error(client.get("/nope"), 404, "not_found", "/predict")


def test_champion_failure_is_a_json_500_without_traceback(app, client, store, exploding_challenger, expect_error):
    store.set(champion=exploding_challenger)
    set_split(app, 0.0)
    body = expect_error(client.post("/predict", json=VPN), 500, "internal_error", "request_id")
    assert "exploded" not in body["message"]


def test_lone_surrogates_in_text_and_ids_are_served_and_logged(client, settings):
    body = '{"text": "vpn drops \\ud800 again", "customer_id": "c-\\udfff"}'
    response = client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 200
    row = rows(settings).iloc[-1]
    assert row["request_id"] == response.get_json()["request_id"]
    assert row["text"].startswith("vpn drops ")


def test_a_ticket_id_that_is_an_email_is_logged_as_a_pseudonym_too(client, settings):
    client.post("/predict", json=VPN | {"ticket_id": "anna.k@example.com"})
    (logged,) = rows(settings)["ticket_id"]
    assert re.fullmatch(r"cust-[0-9a-f]{16}", logged)
