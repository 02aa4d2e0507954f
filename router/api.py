"""The router's HTTP contract, defined once: pydantic models that spectree both enforces and publishes.

Every endpoint is declared with `api.validate(...)`: request bodies are checked against these
models before the view runs and answers against them after it, and `GET /openapi.json` is the
OpenAPI 3 document built from the same declarations. Refusals keep the router's error contract
(`{"error", "message"}` naming the field, see router.errors): when a body fails its model, the
endpoint's own parser (router.inputs, router.batch, router.invocations) is asked first, so the
message is the one a client always got; only what the parser would let through gets the model's
own wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, RootModel, ValidationError, WithJsonSchema
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecuritySchemeData

from router.errors import APIError
from router.inputs import CLIENT_REQUEST_ID, MAX_ID_CHARS, json_type


def _text(min_length: int = 0, pattern: str | None = None) -> Any:
    """A JSON string, checked in Python: pydantic's own str would refuse the lone surrogates that JSON
    escapes allow and the router serves (they are masked and logged like any text)."""
    compiled = re.compile(pattern) if pattern else None

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {json_type(value)}")
        if len(value) < min_length or (compiled and not compiled.fullmatch(value)):
            raise ValueError(f"must be a string of at least {min_length} characters"
                             + (f" matching {pattern}" if pattern else ""))
        return value

    schema = {"type": "string", **({"minLength": min_length} if min_length else {}),
              **({"pattern": f"^{pattern}$"} if pattern else {})}
    return Annotated[Any, PlainValidator(check), WithJsonSchema(schema)]


def _id(value: object) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"must be a string or an integer, got {json_type(value)}")
    return value


StrictStr = _text()
NonEmpty = _text(min_length=1)
Id = Annotated[Any, PlainValidator(_id), WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]})]


class Open(BaseModel):
    """Clients may send (and answers may carry) fields beyond the documented ones."""

    model_config = ConfigDict(extra="allow")


class Ticket(Open):
    """One ticket: `text` is classified; `customer_id` (else `ticket_id`) decides the arm."""

    text: NonEmpty = Field(description="the ticket text (at most TICKET_AB_MAX_TEXT_CHARS)")
    ticket_id: Id | None = Field(None, description=f"the ticket's id, at most {MAX_ID_CHARS} characters")
    customer_id: Id | None = Field(None, description="the customer: the same one always sees the same arm")
    request_id: _text(1, CLIENT_REQUEST_ID.pattern) | None = Field(  # type: ignore[valid-type]
        None, description="the client's own id for this request (kept on a retry)")


class TicketBatch(Open):
    tickets: list[Ticket] = Field(min_length=1, description="at most TICKET_AB_MAX_BATCH tickets")


class PredictBody(RootModel[Ticket | TicketBatch]):
    """One ticket, or `{"tickets": [...]}`."""


class Answer(Open):
    request_id: str
    variant: str
    model_alias: str
    model_version: str
    topic: str
    confidence: float
    scores: dict[str, float]
    latency_ms: float
    logged: bool


class Results(Open):
    results: list[Answer]


class PredictAnswer(RootModel[Answer | Results]):
    """The answer to one ticket, or `{"results": [...]}` for a batch (in the order sent)."""


class Feedback(Open):
    request_id: NonEmpty = Field(description="the request_id a /predict answered with")
    label: NonEmpty = Field(description="the true topic, one the champion knows")


class FeedbackAccepted(Open):
    status: str
    request_id: str
    label: str
    source: str


class ConfigChange(Open):
    ab_split_b: float | None = Field(None, ge=0.0, le=1.0, description="share of customers for the challenger")
    mode: StrictStr | None = Field(None, description="'split' or 'shadow'")
    updated_by: Id | None = None


class Config(Open):
    ab_split_b: float
    mode: str
    updated_at: str | None
    updated_by: str
    experiment_id: str


class Health(Open):
    status: str


class Ready(Open):
    ready: bool


class Error(BaseModel):
    error: str = Field(description="a stable code, e.g. invalid_field")
    message: str = Field(description="what is wrong and what fixes it")


class MlflowPayload(Open):
    """Exactly one of the four fields, as `mlflow models serve` takes them."""

    dataframe_split: Any = Field(None, description="DataFrame.to_dict(orient='split') with a 'text' column")
    dataframe_records: Any = Field(None, description="rows as objects with a 'text' field")
    inputs: Any = Field(None, description="columns ({'text': [...]}) or rows")
    instances: Any = Field(None, description="rows")
    params: Any = Field(None, description="accepted and ignored")


class MlflowPredictions(Open):
    predictions: list[str] = Field(description="one topic per row, as `mlflow models serve` answers")
    request_ids: list[str] = Field(description="one per row, for POST /feedback")


class Tensor(Open):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = None


class InferRequest(Open):
    id: str | None = None
    inputs: list[Tensor] = Field(min_length=1, description="a BYTES 'text' of shape [N]; optional 'customer_id'")
    outputs: list[Open] | None = None


class InferResponse(Open):
    model_name: str
    id: str | None = None
    outputs: list[Tensor]


class TensorMetadata(Open):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(Open):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(Open):
    name: str
    version: str
    extensions: list[str]


class Live(Open):
    live: bool


BEARER = "bearer"
api = SpecTree("flask", title="ticket-ab router", version="1", path="apidoc", mode="strict",
               validation_error_status=422, annotations=False,
               security_schemes=[SecurityScheme(name=BEARER, data=SecuritySchemeData(type="http", scheme="bearer"))],
               security={})


def answers(ok: dict[str, type[BaseModel] | None], *errors: int) -> Response:
    """The documented answers of an endpoint: its successes and the error statuses it can give."""
    return Response(**{f"HTTP_{status}": model for status, model in ok.items()},
                    **{f"HTTP_{status}": Error for status in errors})


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"field '{where}': {first['msg']} (got {json_type(first.get('input'))})"


def explained(parse: Callable[[], object]) -> Callable[..., None]:
    """spectree's `before` hook: a body its model refuses is explained by the endpoint's own parser."""

    def before(_request: Any, _response: Any, error: Exception | None, _instance: Any, _adapter: Any) -> None:
        if error is None:
            return
        parse()
        raise APIError(422, "invalid_field", _describe(error) if isinstance(error, ValidationError) else str(error))

    return before


class BodyJSON(DefaultJSONProvider):
    """Flask's JSON with the router's key order, and pathological nesting as a parse failure.

    spectree reads bodies with `request.get_json(silent=True)`, which absorbs ValueError but not
    the RecursionError of deeply nested JSON; as a ValueError it becomes "no body", which the
    endpoint's parser then refuses with 400 like any other invalid JSON.
    """

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
