"""The request rules are written once: the contract's models are the validation, the OpenAPI document and the
refusal's message, so a limit changed in the settings changes all three together."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

from router import create_app, refusals
from router.errors import APIError
from tests.unit.router.router_testkit import MemoryStore

SMALL = {"max_text_chars": 50, "max_batch": 3}


def schema(document: dict, name: str) -> dict:
    return document["components"]["schemas"][name]


def predict_bodies(document: dict) -> dict[str, dict]:
    """The /predict body's alternatives by name (one ticket, a batch), as the document publishes them."""
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    root = schema(document, body["$ref"].rsplit("/", 1)[-1])
    return {ref["$ref"].rsplit("/", 1)[-1]: schema(document, ref["$ref"].rsplit("/", 1)[-1]) for ref in root["oneOf"]}


@pytest.fixture
def router_for(make_settings, champion_model, challenger_model):
    """A router under the given limits, with its settings (each its own app, as gunicorn workers are)."""
    apps = []

    def build(limits: dict[str, int]):
        settings = make_settings(router=limits)
        app = create_app(settings, store=MemoryStore(champion_model, challenger_model, settings))
        apps.append(app)
        return settings.router, app.test_client()

    yield build
    for app in apps:
        app.extensions["ticket_ab"].requests.close()
        app.extensions["ticket_ab"].feedback.close()


@pytest.mark.parametrize("limits", [{}, SMALL], ids=["default limits", "limits set to 50 characters, 3 tickets"])
def test_a_limit_is_the_same_in_the_document_the_validation_and_the_message(router_for, expect_error, limits):
    limits_in_force, client = router_for(limits)
    max_chars, cap = limits_in_force.max_text_chars, limits_in_force.max_batch
    assert {name: getattr(limits_in_force, name) for name in limits} == limits

    bodies = predict_bodies(client.get("/openapi.json").get_json())
    assert bodies["Ticket"]["properties"]["text"]["maxLength"] == max_chars
    assert bodies["TicketBatch"]["properties"]["tickets"]["maxItems"] == cap

    assert client.post("/predict", json={"text": "v" * max_chars}).status_code == 200
    expect_error(client.post("/predict", json={"text": "v" * (max_chars + 1)}), 413, "text_too_long", "'text'",
                 f"the limit is {max_chars}", "TICKET_AB_MAX_TEXT_CHARS")
    expect_error(client.post("/predict", json={"tickets": [{"text": "vpn"}, {"text": "v" * (max_chars + 1)}]}), 413,
                 "text_too_long", "ticket 1", f"the limit is {max_chars}")

    assert len(client.post("/predict", json={"tickets": [{"text": "vpn"}] * cap}).get_json()["results"]) == cap
    for path, payload in (("/predict", {"tickets": [{"text": "vpn"}] * (cap + 1)}),
                          ("/invocations", {"instances": ["vpn"] * (cap + 1)})):
        expect_error(client.post(path, json=payload), 413, "batch_too_large", f"{cap + 1} tickets",
                     f"the limit is {cap}", "TICKET_AB_MAX_BATCH")


def test_two_apps_in_one_process_each_enforce_and_publish_their_own_limits(router_for):
    small, small_client = router_for(SMALL)
    default, default_client = router_for({})
    assert small.max_text_chars < default.max_text_chars
    text = {"text": "v" * (small.max_text_chars + 1)}
    assert (small_client.post("/predict", json=text).status_code, default_client.post("/predict", json=text).status_code
            ) == (413, 200)
    published = [predict_bodies(c.get("/openapi.json").get_json())["Ticket"]["properties"]["text"]["maxLength"]
                 for c in (small_client, default_client)]
    assert published == [small.max_text_chars, default.max_text_chars]


class Sample(BaseModel):
    """A model with one rule of each kind, to show that refusals map error types, whatever the field."""

    colour: Literal["red", "blue"]
    size: int

    @model_validator(mode="after")
    def _not_big_red(self) -> Sample:
        if self.colour == "red" and self.size > 3:
            raise PydanticCustomError("too_red", "has a red size above 3")
        return self


@pytest.mark.parametrize(("body", "code", "mentions"), [
    ({"colour": "red"}, "missing_field", ["field 'size'", "required"]),
    ({"colour": "green", "size": 1}, "invalid_field", ["field 'colour'", "'red' or 'blue'", "'green'"]),
    ({"colour": "red", "size": "big"}, "invalid_field", ["field 'size'", "integer"]),
    ({"colour": "red", "size": 4}, "too_red", ["the request has a red size above 3"]),
])
def test_refusals_map_pydantic_error_types_and_a_models_own_codes(body, code, mentions):
    with pytest.raises(APIError) as refused:
        refusals.validated(Sample, body, 418, "invalid_field")
    assert (refused.value.status, refused.value.code) == (418, code)
    assert all(word in refused.value.message for word in mentions), refused.value.message
