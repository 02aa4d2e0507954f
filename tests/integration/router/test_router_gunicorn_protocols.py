"""Third-party clients against a live gunicorn router: MLflow's own scoring client and payloads on
/invocations, Triton's HTTP client on the Open Inference Protocol (V2). Both get the topics the
registered pipelines give, and every ticket leaves a request-log row with its arm. The champion is a
one-head version and the challenger a two-head one (topic + priority), so the answers carry both shapes
(a priority, or none). Then schemathesis generates requests (valid and invalid) for every operation of
/openapi.json: none may answer 5xx, and every answer must match the document."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import requests
import schemathesis
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from mlflow.models.utils import convert_input_example_to_serving_input
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.router.router_harness import (
    ADMIN_TOKEN,
    FEEDBACK_TOKEN,
    register,
    router_settings,
    start_router,
    stop_router,
)
from tests.unit.router.router_testkit import fitted_pipeline, fitted_two_head, sample_tickets
from ticket_ab.names import A, B
from ticket_ab.requestlog import read_requests

PIPELINES = {"1": fitted_pipeline(seed=0), "2": fitted_two_head(seed=1)}
TICKETS = sample_tickets(per_topic=4, seed=5).sample(frac=1.0, random_state=3).reset_index(drop=True)
EXAMPLES = 12  # per operation and generation mode: bounded, so the suite stays within its CI budget
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FRAME = pd.DataFrame({"text": TICKETS["text"], "customer_id": [f"cust-{i % 11}" for i in range(len(TICKETS))]})


@pytest.fixture(scope="module")
def router(module_home, mlflow_server):
    settings = router_settings(module_home, mlflow_server.uri, "router-protocols")
    assert (register(settings, PIPELINES["1"], "champion"), register(settings, PIPELINES["2"], "challenger")) == (
        "1", "2")
    running = start_router(settings)
    yield running
    stop_router(running)


def new_rows(router, before: int) -> pd.DataFrame:
    read = read_requests(router.settings.logs_dir)
    assert read.malformed == 0
    return read.rows.iloc[before:].reset_index(drop=True)


def logged_count(router) -> int:
    return len(read_requests(router.settings.logs_dir).rows)


def check_rows(rows: pd.DataFrame, topics: list[str], frame: pd.DataFrame) -> None:
    """One row per ticket, in order, with its arm; each topic is what the served version's pipeline predicts."""
    assert list(rows["topic"]) == topics
    assert list(rows["customer_id"]) == list(frame["customer_id"])
    assert set(rows["variant"]) == {A, B}, "both arms serve at split 0.5"
    assert (rows["variant"].map({A: "1", B: "2"}) == rows["model_version"]).all()
    for version, served in rows.groupby("model_version"):
        expected = PIPELINES[version].predict(frame.loc[served.index, ["text"]])
        assert list(served["topic"]) == list(expected)


def test_mlflow_scoring_client_works_by_changing_only_the_url(router):
    client = ScoringServerClient(router.settings.router.host, router.settings.router.port)
    client.wait_server_ready(timeout=30)
    before = logged_count(router)
    predictions = client.invoke(FRAME).get_predictions(predictions_format="ndarray")
    check_rows(new_rows(router, before), list(predictions), FRAME)


def test_mlflow_serving_input_example_is_scored(router):
    before = logged_count(router)
    response = requests.post(router.url + "/invocations", data=convert_input_example_to_serving_input(FRAME),
                             headers={"Content-Type": "application/json", "Connection": "close"}, timeout=30)
    assert response.status_code == 200, response.text
    rows = new_rows(router, before)
    check_rows(rows, response.json()["predictions"], FRAME)
    assert list(rows["request_id"]) == response.json()["request_ids"]


def test_triton_http_client_infers_topics_and_scores(router):
    name = router.settings.model_name
    client = triton.InferenceServerClient(url=f"{router.settings.router.host}:{router.settings.router.port}")
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
        metadata = client.get_model_metadata(name)
        assert metadata["versions"] == ["1", "2"]
        text = triton.InferInput("text", [len(FRAME)], "BYTES")
        text.set_data_from_numpy(FRAME["text"].to_numpy(dtype=object))  # binary tensor data, the client's default
        customer = triton.InferInput("customer_id", [len(FRAME)], "BYTES")
        customer.set_data_from_numpy(FRAME["customer_id"].to_numpy(dtype=object))
        before = logged_count(router)
        result = client.infer(name, [text, customer])
    finally:
        client.close()
    rows = new_rows(router, before)
    topics = [t.decode() if isinstance(t, bytes) else str(t) for t in result.as_numpy("topic")]
    check_rows(rows, topics, FRAME)
    assert list(result.as_numpy("variant").astype(str)) == list(rows["variant"])
    scores = result.as_numpy("scores")
    for version, served in rows.groupby("model_version"):
        expected = PIPELINES[version].predict_proba(FRAME.loc[served.index, ["text"]])
        np.testing.assert_allclose(scores[served.index], expected, atol=1e-5)
    assert metadata["parameters"]["topics"] == list(PIPELINES["1"].classes_)
    priorities = [p.decode() if isinstance(p, bytes) else str(p) for p in result.as_numpy("priority")]
    two_head = rows["model_version"] == "2"
    assert [p for p, two in zip(priorities, two_head, strict=True) if two] == list(
        PIPELINES["2"].predict_priority(FRAME.loc[two_head, ["text"]]))
    assert not any(p for p, two in zip(priorities, two_head, strict=True) if not two)  # one-head: ""
    np.testing.assert_allclose(result.as_numpy("priority_scores")[two_head.to_numpy()].sum(axis=1), 1.0, atol=1e-4)


def test_unknown_v2_model_is_a_404_json_error(router):
    response = router.get("/v2/models/no-such-model")
    assert (response.status_code, response.json()["error"]) == (404, "unknown_model")



def test_generated_requests_get_no_5xx_and_answers_that_match_the_document(router):
    """Last in the module: generated POST /config bodies change the experiment."""
    schema = schemathesis.openapi.from_url(router.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13

    def check(case) -> None:
        token = {"/config": ADMIN_TOKEN, "/feedback": FEEDBACK_TOKEN}.get(case.path)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers |= {"If-Match": "*"} if case.path == "/config" else {}
        case.call_and_validate(headers=headers or None,
                               checks=CONFORMANCE, timeout=30)

    for operation in operations:
        # schema-valid requests everywhere, schema-invalid bodies too (a GET has nothing to get wrong)
        modes = list(schemathesis.GenerationMode) if operation.method.upper() == "POST" else [
            schemathesis.GenerationMode.POSITIVE]
        for mode in modes:
            BOUNDED(given(case=operation.as_strategy(generation_mode=mode))(lambda case: check(case)))()
