"""Topic and priority in every answer of a two-head version (/predict single and batch, /invocations, V2, /ready);
a one-head version still serves, its priority null with a note (V2: "" and a row of zeros, as documented)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from mlflow.utils.proto_json_utils import dump_input_data

from load_test.simulate.generator import generate
from router.models import Models
from router.v2 import PRIORITY_ABSENT, priority_columns
from tests.unit.router.router_testkit import fitted_two_head, loaded
from ticket_ab.names import CHALLENGER, CHAMPION
from ticket_ab.pii import mask
from ticket_ab.schema import PRIORITIES
from ticket_ab.twohead import PRIORITY_HEAD, TOPIC_HEAD

pytestmark = pytest.mark.slow  # fits two-head models: `make test` runs it, `make check` does not

TEXTS = generate("baseline", 30, seed=7)["text"].tolist()


def set_split(app, split_b: float, mode: str = "split") -> None:
    app.extensions["ticket_ab"].config.update(ab_split_b=split_b, mode=mode, updated_by="test")


def expected(model, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's own topic and priority probabilities and priorities on the texts as the router masks them."""
    frame = pd.DataFrame({"text": [mask(text) for text in texts]})
    topic, priority = model.predict_both(frame)
    return topic, priority, model.predict_priority(frame)


def assert_two_head_answer(body: dict, model, text: str) -> None:
    topic, priority, picked = expected(model, [text])
    assert body["topic_scores"] == body["scores"]
    np.testing.assert_allclose([body["topic_scores"][c] for c in model.classes_], topic[0], atol=1e-6)
    assert list(body["priority_scores"]) == list(model.priority_classes_)
    assert math.isclose(sum(body["priority_scores"].values()), 1.0, abs_tol=1e-4)
    np.testing.assert_allclose([body["priority_scores"][c] for c in model.priority_classes_], priority[0], atol=1e-6)
    assert body["priority"] == picked[0]
    assert body["priority_confidence"] == body["priority_scores"][body["priority"]]
    assert body["priority_note"] is None


def assert_one_head_answer(body: dict, version: str) -> None:
    assert body["priority"] is None and body["priority_scores"] is None and body["priority_confidence"] is None
    assert body["priority_note"] == f"v{version} predicts topic only (one-head version)"
    assert body["topic_scores"] == body["scores"] and math.isclose(sum(body["scores"].values()), 1.0, abs_tol=1e-4)


@pytest.fixture
def two_head_only(store, two_head):
    store.set(champion=loaded(two_head, CHAMPION, "5"), challenger=None)
    return two_head


@pytest.fixture
def mixed(app, store, champion_model, two_head):
    """A one-head champion (v1) beside a two-head challenger (v5), tickets split half and half."""
    store.set(champion=champion_model, challenger=loaded(two_head, CHALLENGER, "5"))
    set_split(app, 0.5)
    return two_head


def test_a_two_head_version_answers_topic_and_every_priority_scored_summing_to_one(client, two_head_only):
    for text in TEXTS[:5]:
        response = client.post("/predict", json={"text": text})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert_two_head_answer(response.get_json(), two_head_only, text)


def test_a_two_head_batch_answers_each_ticket_as_alone(client, two_head_only):
    results = client.post("/predict", json={"tickets": [{"text": text} for text in TEXTS]}).get_json()["results"]
    for body, text in zip(results, TEXTS, strict=True):
        assert_two_head_answer(body, two_head_only, text)


def test_the_versions_urgent_threshold_decides_the_priority_alone_and_in_a_batch(client, store, two_head):
    always_urgent = copy.copy(two_head)  # the same fitted heads; any urgent probability reaches the threshold
    always_urgent.urgent_threshold = 0.0
    store.set(champion=loaded(always_urgent, CHAMPION, "6"), challenger=None)
    results = [client.post("/predict", json={"text": TEXTS[0]}).get_json(),
               *client.post("/predict", json={"tickets": [{"text": text} for text in TEXTS]}).get_json()["results"]]
    assert {body["priority"] for body in results} == {"urgent"}
    assert all(body["priority_confidence"] == body["priority_scores"]["urgent"] for body in results)
    assert any(body["priority_confidence"] < max(body["priority_scores"].values()) for body in results)


def test_a_one_head_version_still_serves_with_null_priority_and_a_note(app, client):
    set_split(app, 0.0)
    body = client.post("/predict", json={"text": "vpn drops every hour"}).get_json()
    assert body["topic"] == "network"
    assert_one_head_answer(body, "1")


def test_a_two_head_model_trained_without_priorities_serves_as_one_head(client, store):
    skipped = fitted_two_head(seed=2, n=200, priority=None)
    model = loaded(skipped, CHAMPION, "7")
    assert model.priority_classes == () and model.heads == (TOPIC_HEAD,)
    store.set(champion=model, challenger=None)
    assert_one_head_answer(client.post("/predict", json={"text": TEXTS[0]}).get_json(), "7")


def test_a_one_head_champion_and_a_two_head_challenger_in_one_batch(client, mixed):
    tickets = [{"text": text, "customer_id": f"c-{i}"} for i, text in enumerate(TEXTS)]
    results = client.post("/predict", json={"tickets": tickets}).get_json()["results"]
    assert {r["model_alias"] for r in results} == {CHAMPION, CHALLENGER}
    for body, text in zip(results, TEXTS, strict=True):
        if body["model_alias"] == CHALLENGER:
            assert_two_head_answer(body, mixed, text)
        else:
            assert_one_head_answer(body, "1")


def test_invocations_add_topic_scores_and_priorities_per_row(client, mixed):
    frame = pd.DataFrame({"text": TEXTS, "customer_id": [f"c-{i}" for i in range(len(TEXTS))]})
    body = client.post("/invocations", data=dump_input_data(frame), content_type="application/json").get_json()
    predict = client.post("/predict", json={"tickets": frame.to_dict(orient="records")}).get_json()["results"]
    assert body["predictions"] == [r["topic"] for r in predict]  # the MLflow answer is unchanged
    assert body["topic_scores"] == [r["topic_scores"] for r in predict]
    assert body["priorities"] == [r["priority"] for r in predict]
    assert body["priority_scores"] == [r["priority_scores"] for r in predict]
    assert None in body["priorities"] and any(body["priorities"])  # both arms answered


def test_v2_answers_priority_tensors_with_the_one_head_convention_in_a_mixed_batch(client, settings, mixed):
    inputs = [{"name": "text", "datatype": "BYTES", "shape": [len(TEXTS)], "data": TEXTS},
              {"name": "customer_id", "datatype": "BYTES", "shape": [len(TEXTS)],
               "data": [f"c-{i}" for i in range(len(TEXTS))]}]
    response = client.post(f"/v2/models/{settings.model_name}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.get_data(as_text=True)
    outputs = {tensor["name"]: tensor for tensor in response.get_json()["outputs"]}
    columns = [c for c in PRIORITIES if c in mixed.priority_classes_]  # the schema's order
    assert outputs["priority"]["datatype"] == "BYTES" and outputs["priority_scores"]["datatype"] == "FP32"
    assert outputs["priority_scores"]["shape"] == [len(TEXTS), len(columns)]
    rows = np.asarray(outputs["priority_scores"]["data"]).reshape(len(TEXTS), len(columns))
    _, priority, picked = expected(mixed, TEXTS)
    versions = outputs["model_version"]["data"]
    assert set(versions) == {"1", "5"}
    for i, version in enumerate(versions):
        if version == "5":
            assert outputs["priority"]["data"][i] == picked[i]
            in_columns = priority[i][[list(mixed.priority_classes_).index(c) for c in columns]]
            np.testing.assert_allclose(rows[i], in_columns, atol=1e-6)
            assert math.isclose(rows[i].sum(), 1.0, abs_tol=1e-4)
        else:
            assert outputs["priority"]["data"][i] == "" and not rows[i].any()


def test_v2_metadata_names_the_priority_columns_each_aliass_heads_and_the_convention(client, settings, mixed):
    meta = client.get(f"/v2/models/{settings.model_name}").get_json()
    outputs = {t["name"]: t for t in meta["outputs"]}
    assert outputs["priority"]["datatype"] == "BYTES"
    assert (outputs["priority_scores"]["datatype"], outputs["priority_scores"]["shape"]) == (
        "FP32", [-1, len(mixed.priority_classes_)])
    assert meta["parameters"]["priorities"] == [c for c in PRIORITIES if c in mixed.priority_classes_]
    assert meta["parameters"]["heads"] == {CHAMPION: [TOPIC_HEAD], CHALLENGER: [TOPIC_HEAD, PRIORITY_HEAD]}
    assert meta["parameters"]["priority_absent"] == PRIORITY_ABSENT


def test_v2_priority_outputs_can_be_asked_for_by_name(client, settings, two_head_only):
    inputs = [{"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS[:2]}]
    response = client.post(f"/v2/models/{settings.model_name}/infer",
                           json={"inputs": inputs, "outputs": [{"name": "priority"}]})
    assert [t["name"] for t in response.get_json()["outputs"]] == ["priority"]
    assert response.get_json()["outputs"][0]["data"] == list(expected(two_head_only, TEXTS[:2])[2])


def test_ready_says_which_heads_each_alias_has(client, mixed):
    body = client.get("/ready").get_json()
    assert body["champion"]["heads"] == [TOPIC_HEAD]
    assert body["challenger"]["heads"] == [TOPIC_HEAD, PRIORITY_HEAD]


def test_the_openapi_document_describes_the_priority_fields(client):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    answer = schemas["Answer"]["properties"]
    for field in ("topic_scores", "priority", "priority_confidence", "priority_scores", "priority_note"):
        assert answer[field]["description"]
    assert "one-head" in answer["priority"]["description"]
    for field in ("topic_scores", "priorities", "priority_scores"):
        assert schemas["MlflowPredictions"]["properties"][field]["description"]
    assert "priority_scores" in schemas["ModelMetadata"]["properties"]["outputs"]["description"]


def test_v2_priority_columns_cover_both_versions_classes_in_the_schemas_order(two_head):
    version = loaded(two_head, CHAMPION, "5")
    champion = replace(version, priority_classes=("high", "low"))
    challenger = replace(version, alias=CHALLENGER, priority_classes=("urgent", "low", "critical"))
    assert priority_columns(Models(champion, challenger)) == ("low", "high", "urgent", "critical")
    assert priority_columns(Models(replace(version, priority_classes=()), None)) == PRIORITIES
