"""Property-based fuzzing of every endpoint (Hypothesis): whatever the body, the answer is never a 5xx.

Bodies are any JSON value, any JSON object built from the fields the endpoints know, deep nests and
raw bytes; every refusal is the router's JSON error. The schema-driven fuzzing of the live router
(schemathesis, tests/integration/router/test_router_gunicorn_protocols.py) covers what the OpenAPI
document says; this covers what it does not.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = ["text", "tickets", "customer_id", "ticket_id", "request_id", "label", "ab_split_b", "mode", "updated_by",
          "dataframe_split", "dataframe_records", "inputs", "instances", "columns", "data", "name", "shape",
          "datatype", "parameters", "outputs", "binary_data_size"]
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=40) | st.sampled_from(["split", "shadow", "BYTES", "network", "text", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4),
                      max_leaves=25)
BODIES = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5) | VALUES
FUZZ = settings(max_examples=120, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _paths(model_name: str) -> list[str]:
    return ["/predict", "/feedback", "/config", "/invocations", f"/v2/models/{model_name}/infer"]


def _assert_handled(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert set(response.get_json()) == {"error", "message"}


def _headers(admin: dict[str, str], agent: dict[str, str], path: str) -> dict[str, str]:
    return {"/config": admin, "/feedback": agent}.get(path, {})


def test_any_json_body_on_any_endpoint_is_answered_without_a_5xx(client, settings, admin, agent):
    @FUZZ
    @given(body=BODIES, path=st.sampled_from(_paths(settings.model_name)))
    def post(body, path):
        raw = json.dumps(body, allow_nan=True)
        _assert_handled(client.post(path, data=raw, content_type="application/json",
                                    headers=_headers(admin, agent, path)))

    post()


def test_raw_bytes_and_deep_nests_are_answered_without_a_5xx(client, settings, admin, agent):
    @FUZZ
    @given(raw=st.binary(max_size=200) | st.integers(1, 3000).map(lambda n: '{"text": ' + "[" * n + "]" * n + "}"),
           path=st.sampled_from(_paths(settings.model_name)))
    def post(raw, path):
        _assert_handled(client.post(path, data=raw, content_type="application/json",
                                    headers=_headers(admin, agent, path)))

    post()
