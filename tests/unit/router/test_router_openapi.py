"""GET /openapi.json: one OpenAPI 3 document, generated from the models the router validates with."""

from __future__ import annotations

import schemathesis

DOCUMENTED = {("post", "/predict"), ("post", "/feedback"), ("get", "/config"), ("post", "/config"), ("get", "/health"),
              ("get", "/ready"), ("post", "/invocations"), ("get", "/v2"), ("get", "/v2/health/live"),
              ("get", "/v2/health/ready"), ("get", "/v2/models/{name}"), ("get", "/v2/models/{name}/ready"),
              ("post", "/v2/models/{name}/infer")}


def test_the_document_is_valid_openapi_3_and_lists_every_endpoint(client):
    document = client.get("/openapi.json").get_json()
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI meta-schema
    assert document["openapi"].startswith("3.")
    assert {(method, path) for path, ops in document["paths"].items() for method in ops} == DOCUMENTED


def test_every_error_status_of_a_body_endpoint_is_documented_with_the_error_shape(client):
    document = client.get("/openapi.json").get_json()
    answers = document["paths"]["/predict"]["post"]["responses"]
    for status in ("400", "413", "415", "422", "503"):
        ref = answers[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.split("/")[-1].startswith("Error")


def test_a_body_the_schema_refuses_is_explained_in_the_routers_words(client, expect_error):
    expect_error(client.post("/predict", json={"text": 5}), 422, "invalid_field", "'text'", "string", "number")
    expect_error(client.post("/predict", json={"tickets": []}), 422, "empty_batch", "no tickets")
    expect_error(client.post("/invocations", json=[1]), 400, "invalid_json", "object")
