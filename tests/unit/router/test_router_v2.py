"""The Open Inference Protocol (V2): health, model metadata and infer, with request bodies built by Triton's
own client library (JSON and binary tensors) and answers read back by it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from ticket_ab.requestlog import read_requests

TEXTS = ["vpn drops every hour and the wifi is slow", "invoice charged twice, please refund the payment",
         "my laptop battery and the monitor are broken"]


def set_split(app, split_b: float) -> None:
    app.extensions["ticket_ab"].config.update(ab_split_b=split_b, mode="split", updated_by="test")


def infer_request(texts: list[str], customers: list[str] | None = None, binary: bool = False,
                  outputs: list[str] | None = None) -> tuple[bytes, dict[str, str]]:
    """A V2 infer body and headers exactly as tritonclient.http sends them."""
    tensors = []
    for name, values in (("text", texts), ("customer_id", customers)):
        if values is not None:
            tensor = triton.InferInput(name, [len(values)], "BYTES")
            tensor.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary)
            tensors.append(tensor)
    wanted = [triton.InferRequestedOutput(name, binary_data=False) for name in outputs] if outputs else None
    body, json_size = triton.InferenceServerClient.generate_request_body(tensors, outputs=wanted, request_id="r-1")
    return body, ({} if json_size is None else {"Inference-Header-Content-Length": str(json_size)})


def infer(client, settings, texts, **kwargs):
    body, headers = infer_request(texts, **kwargs)
    return client.post(f"/v2/models/{settings.model_name}/infer", data=body, headers=headers)


def result(response) -> triton.InferResult:
    assert response.status_code == 200, response.get_data(as_text=True)
    return triton.InferenceServerClient.parse_response_body(response.get_data())


def test_health_and_server_metadata(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    assert "binary_tensor_data" in client.get("/v2").get_json()["extensions"]


def test_not_ready_without_a_champion(client, store, settings):
    store.set(champion=None, challenger=None)
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get(f"/v2/models/{settings.model_name}/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200


def test_model_metadata_lists_inputs_outputs_and_the_versions_behind_the_aliases(client, settings, champion_model):
    meta = client.get(f"/v2/models/{settings.model_name}").get_json()
    assert meta["name"] == settings.model_name
    assert meta["versions"] == ["1", "2"]
    assert meta["parameters"]["aliases"] == {"champion": "1", "challenger": "2"}
    assert {(t["name"], t["datatype"]) for t in meta["inputs"]} == {("text", "BYTES"), ("customer_id", "BYTES")}
    outputs = {t["name"]: t for t in meta["outputs"]}
    assert (outputs["topic"]["datatype"], outputs["scores"]["datatype"]) == ("BYTES", "FP32")
    assert outputs["scores"]["shape"] == [-1, len(champion_model.classes)]
    assert meta["parameters"]["topics"] == list(champion_model.classes)


@pytest.mark.parametrize("binary", [False, True], ids=["json tensors", "binary tensors"])
def test_infer_answers_topics_and_scores_as_the_champion_pipeline(app, client, settings, champion_model, binary):
    set_split(app, 0.0)
    answer = result(infer(client, settings, TEXTS, customers=["c-1", "c-2", "c-3"], binary=binary))
    expected = champion_model.pipeline.predict_proba(pd.DataFrame({"text": TEXTS}))
    assert [t.decode() if isinstance(t, bytes) else t for t in answer.as_numpy("topic")] == \
        list(champion_model.pipeline.classes_[expected.argmax(axis=1)])
    np.testing.assert_allclose(answer.as_numpy("scores"), expected, atol=1e-5)
    assert answer.get_response()["id"] == "r-1"


def test_each_element_is_logged_with_its_arm_and_customer(client, settings):
    answer = result(infer(client, settings, TEXTS, customers=["c-1", "c-2", "c-3"]))
    logged = read_requests(settings.logs_dir).rows
    assert list(logged["request_id"]) == list(answer.as_numpy("request_id").astype(str))
    assert list(logged["variant"]) == list(answer.as_numpy("variant").astype(str))
    assert list(logged["customer_id"]) == ["c-1", "c-2", "c-3"]


def test_requested_outputs_are_the_only_ones_returned(client, settings):
    answer = result(infer(client, settings, TEXTS, outputs=["topic"]))
    assert [o["name"] for o in answer.get_response()["outputs"]] == ["topic"]


def test_unknown_model_is_404_naming_the_served_one(client, settings, expect_error):
    expect_error(client.get("/v2/models/other"), 404, "unknown_model", settings.model_name)
    body, headers = infer_request(TEXTS)
    expect_error(client.post("/v2/models/other/infer", data=body, headers=headers), 404, "unknown_model")


@pytest.mark.parametrize(("body", "mentions"), [
    ({}, ["'inputs'"]),
    ({"inputs": [{"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": ["c"]}]}, ["'text'", "required"]),
    ({"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]}, ["'text'", "BYTES"]),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["vpn"]}]}, ["shape [2]", "1 elements"]),
    ({"inputs": [{"name": "txt", "datatype": "BYTES", "shape": [1], "data": ["vpn"]}]}, ["unknown input 'txt'"]),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}]}, ["'text'", "'data'"]),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["vpn", "x"]},
                {"name": "customer_id", "datatype": "BYTES", "shape": [1], "data": ["c"]}]}, ["'customer_id'", "1 "]),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [""]}]}, ["ticket 0", "empty"]),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["vpn"]}],
      "outputs": [{"name": "label"}]}, ["unknown output", "label"]),
])
def test_a_bad_infer_request_is_400_naming_the_problem_and_logs_nothing(client, settings, expect_error, body,
                                                                        mentions):
    response = client.post(f"/v2/models/{settings.model_name}/infer", json=body)
    expect_error(response, 400, response.get_json()["error"], *mentions)
    assert read_requests(settings.logs_dir).rows.empty


def test_broken_binary_data_is_400(client, settings, expect_error):
    body, headers = infer_request(TEXTS, binary=True)
    response = client.post(f"/v2/models/{settings.model_name}/infer", data=body[:-3], headers=headers)
    expect_error(response, 400, "invalid_tensor", "'text'")
    bad_header = client.post(f"/v2/models/{settings.model_name}/infer", data=body,
                             headers={"Inference-Header-Content-Length": "x"})
    expect_error(bad_header, 400, "invalid_tensor", "Inference-Header-Content-Length")


def test_more_elements_than_the_cap_is_413(client, settings, expect_error):
    response = infer(client, settings, ["vpn"] * (settings.router.max_batch + 1))
    expect_error(response, 413, "batch_too_large", "TICKET_AB_MAX_BATCH")
