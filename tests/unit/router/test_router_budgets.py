"""Every input has a budget: depth, repeated fields, characters per batch, request ids per batch, column names.

What a body may cost is refused before it costs it, with a 4xx naming the limit; nothing is logged
for a refused request.
"""

from __future__ import annotations

import json
import time

import pytest

from router.body import MAX_DEPTH, depth
from ticket_ab.requestlog import read_requests


def _nested(levels: int) -> list:
    value: list = ["vpn drops"]
    for _ in range(levels - 1):
        value = [value]
    return value


def _post(client, path: str, raw: str):
    return client.post(path, data=raw, content_type="application/json")


def _logged(settings) -> int:
    return len(read_requests(settings.logs_dir).rows)


@pytest.mark.parametrize("value, expected", [({}, 1), ([[], {"a": [1]}], 3), ("text", 0), (_nested(40), MAX_DEPTH + 1)])
def test_depth_counts_levels_of_arrays_and_objects_and_stops_past_the_limit(value, expected):
    assert depth(value) == expected


def test_a_body_nested_600_levels_deep_is_400_on_every_endpoint_within_a_second(client, settings, expect_error):
    deep = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": _nested(600)}]}
    for path in ("/predict", "/invocations", f"/v2/models/{settings.model_name}/infer"):
        started = time.perf_counter()
        response = _post(client, path, json.dumps(deep))
        assert time.perf_counter() - started < 1.0
        expect_error(response, 400, "invalid_json", f"more than {MAX_DEPTH} levels")


def test_a_field_named_twice_in_one_object_is_400_naming_it(client, expect_error):
    expect_error(_post(client, "/predict", '{"text": "vpn drops", "text": "printer jam"}'), 400, "duplicate_field",
                 "'text' twice")
    expect_error(_post(client, "/invocations", '{"inputs": {"text": ["a"], "text": ["b"]}}'), 400,
                 "duplicate_field", "'text'")


@pytest.mark.parametrize("columns", [["text", "text"], ["text", " text"], ["text", ""]])
def test_invocations_refuse_a_repeated_or_empty_column_name(client, expect_error, columns):
    body = {"dataframe_split": {"columns": columns, "data": [["vpn drops", "printer jam"]]}}
    expect_error(client.post("/invocations", json=body), 400, "invalid_payload", "column")


def test_a_batch_over_the_character_budget_is_413_naming_it_within_a_second(client, settings, expect_error):
    limit = settings.router.max_batch_chars
    per_ticket = min(settings.router.max_text_chars, 16_000)
    count = min(settings.router.max_batch, limit // per_ticket + 1)
    assert count * per_ticket > limit  # the batch fits every other limit but this one
    started = time.perf_counter()
    response = client.post("/predict", json={"tickets": [{"text": "x" * per_ticket}] * count})
    assert time.perf_counter() - started < 1.0
    expect_error(response, 413, "batch_too_large", str(limit), "TICKET_AB_MAX_BATCH_CHARS")
    assert _logged(settings) == 0


def test_the_character_budget_is_a_setting(make_settings, store, expect_error):
    from router import create_app

    app = create_app(make_settings(router={"max_batch_chars": 20}), store=store)
    try:
        client = app.test_client()
        ok = client.post("/predict", json={"tickets": [{"text": "vpn drops"}, {"text": "printer jam"}]})
        assert ok.status_code == 200
        expect_error(client.post("/predict", json={"tickets": [{"text": "vpn drops again"}, {"text": "printer jam"}]}),
                     413, "batch_too_large", "26 characters", "20")
    finally:
        app.extensions["ticket_ab"].requests.close()
        app.extensions["ticket_ab"].feedback.close()


def test_a_batch_repeating_a_request_id_is_422_and_logs_nothing(settings, client, expect_error):
    body = {"tickets": [{"text": "vpn drops", "request_id": "r-1"}, {"text": "printer jam", "request_id": "r-1"}]}
    expect_error(client.post("/predict", json=body), 422, "duplicate_request_id", "'r-1'", "ticket 1")
    assert _logged(settings) == 0


def test_distinct_request_ids_in_a_batch_are_kept_and_logged_once_each(settings, client):
    body = {"tickets": [{"text": "vpn drops", "request_id": "r-1"}, {"text": "printer jam", "request_id": "r-2"}]}
    response = client.post("/predict", json=body)
    assert response.status_code == 200
    assert [r["request_id"] for r in response.get_json()["results"]] == ["r-1", "r-2"]
    assert _logged(settings) == 2
