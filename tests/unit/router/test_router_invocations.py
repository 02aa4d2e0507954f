"""POST /invocations: the payloads `mlflow models serve` takes, built with MLflow's own helpers, answered
in its shape, with every row assigned, logged and counted like a /predict."""

from __future__ import annotations

import io
import json

import mlflow
import pandas as pd
import pytest
from mlflow.deployments import PredictionsResponse
from mlflow.models.utils import convert_input_example_to_serving_input
from mlflow.pyfunc.scoring_server import predictions_to_json
from mlflow.utils.proto_json_utils import dump_input_data

from ticket_ab.requestlog import read_requests

FRAME = pd.DataFrame({"text": ["vpn drops every hour and the wifi is slow",
                               "invoice charged twice, please refund the payment",
                               "my laptop battery and the monitor are broken"],
                      "customer_id": ["c-1", "c-2", None]})


def set_split(app, split_b: float) -> None:
    app.extensions["ticket_ab"].config.update(ab_split_b=split_b, mode="split", updated_by="test")


def mlflow_answer(pipeline, frame: pd.DataFrame) -> dict:
    """What MLflow's scoring server answers for the pipeline (its own serialiser)."""
    out = io.StringIO()
    predictions_to_json(pipeline.predict(frame[["text"]]), out)
    return json.loads(out.getvalue())


PAYLOADS = {
    "dataframe_split (serving input example)": lambda f: convert_input_example_to_serving_input(f),
    "dataframe_split (scoring client)": lambda f: dump_input_data(f),
    "dataframe_records": lambda f: dump_input_data(f.to_dict(orient="records"), inputs_key="dataframe_records"),
    "inputs as columns": lambda f: json.dumps({"inputs": f.to_dict(orient="list")}),
    "inputs as records": lambda f: dump_input_data(f.to_dict(orient="records")),
    "instances": lambda f: dump_input_data(f.to_dict(orient="records"), inputs_key="instances"),
    "inputs as texts": lambda f: dump_input_data(list(f["text"])),
}


@pytest.mark.parametrize("build", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_every_mlflow_payload_is_answered_as_mlflow_serves_the_champion(app, client, champion_model, build):
    set_split(app, 0.0)
    response = client.post("/invocations", data=build(FRAME), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["predictions"] == mlflow_answer(champion_model.pipeline, FRAME)["predictions"]
    assert list(PredictionsResponse.from_json(response.get_data(as_text=True)).get_predictions()[0]) == \
        body["predictions"]


def test_each_row_is_logged_with_its_arm_customer_and_request_id(client, settings):
    body = client.post("/invocations", data=dump_input_data(FRAME), content_type="application/json").get_json()
    logged = read_requests(settings.logs_dir).rows
    assert list(logged["request_id"]) == body["request_ids"]
    assert list(logged["topic"]) == body["predictions"]
    assert list(logged["customer_id"].fillna("")) == ["c-1", "c-2", ""]
    assert set(logged["variant"]) <= {"A", "B"}


def test_a_customer_gets_the_same_arm_as_through_predict(client, settings):
    customers = [f"c-{i}" for i in range(20)]
    frame = pd.DataFrame({"text": ["vpn"] * 20, "customer_id": customers})
    client.post("/invocations", data=dump_input_data(frame), content_type="application/json")
    alone = [client.post("/predict", json={"text": "vpn", "customer_id": c}).get_json()["variant"] for c in customers]
    assert list(read_requests(settings.logs_dir).rows["variant"][:20]) == alone


def test_params_are_accepted_and_ignored(client):
    payload = dump_input_data(FRAME, params={"temperature": 0.1})
    assert client.post("/invocations", data=payload, content_type="application/json").status_code == 200


def test_ping_and_version_answer_like_mlflow(client):
    assert client.get("/ping").status_code == 200
    assert client.get("/version").get_data(as_text=True) == mlflow.__version__


@pytest.mark.parametrize(("payload", "mentions"), [
    ({"dataframe_split": {"columns": ["text"], "data": [["vpn"]]}, "inputs": ["x"]}, ["exactly one", "inputs"]),
    ({"data": [["vpn"]]}, ["exactly one", "dataframe_split"]),
    ({"dataframe_split": [["vpn"]]}, ["'dataframe_split'", "columns"]),
    ({"dataframe_split": {"columns": ["text"], "data": [["vpn", "x"]]}}, ["row 0", "1 values"]),
    ({"dataframe_records": {"text": "vpn"}}, ["'dataframe_records'", "array"]),
    ({"dataframe_records": [{"body": "vpn"}]}, ["ticket 0", "'text'"]),
    ({"inputs": {"text": ["a", "b"], "customer_id": ["c-1"]}}, ["different lengths"]),
    ({"inputs": [1, 2]}, ["ticket 0", "object"]),
    ({"inputs": []}, ["no tickets"]),
    ({"dataframe_records": [{"text": ""}]}, ["ticket 0", "empty"]),
])
def test_a_bad_payload_is_400_naming_the_problem_and_logs_nothing(client, settings, expect_error, payload, mentions):
    response = client.post("/invocations", json=payload)
    expect_error(response, 400, response.get_json()["error"], *mentions)
    assert read_requests(settings.logs_dir).rows.empty


def test_a_payload_over_the_batch_cap_is_413_naming_the_cap(client, settings, expect_error):
    cap = settings.router.max_batch
    for payload in ({"dataframe_split": {"columns": ["text"], "data": [["vpn"]] * (cap + 1)}},
                    {"inputs": {"text": ["vpn"] * (cap + 1)}}, {"dataframe_records": [{"text": "vpn"}] * (cap + 1)}):
        expect_error(client.post("/invocations", json=payload), 413, "batch_too_large", str(cap), "TICKET_AB_MAX_BATCH")


def test_a_list_body_and_a_non_json_body_are_refused(client, expect_error):
    expect_error(client.post("/invocations", json=[{"text": "vpn"}]), 400, "invalid_json", "object")
    expect_error(client.post("/invocations", data="text\nvpn", content_type="text/csv"), 415,
                 "unsupported_media_type")


def test_without_a_champion_invocations_is_503(client, store, expect_error):
    store.set(champion=None, challenger=None)
    expect_error(client.post("/invocations", data=dump_input_data(FRAME), content_type="application/json"), 503,
                 "no_champion")
