"""What the router answers, as models: `GET /openapi.json` documents every answer with them.

Answers are built by the views (router.answer, router.v2, router.config), not from these models;
the schemathesis run against a live router (tests/integration/router) checks that they match.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

from router.fields import Open


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


class FeedbackAccepted(Open):
    status: str
    request_id: str
    label: str
    source: str


class Config(Open):
    ab_split_b: float
    mode: str
    updated_at: str | None
    updated_by: str
    experiment_id: str
    version: int  # the stored config's version: GET /config's ETag, POST /config's If-Match


class Health(Open):
    status: str


class Ready(Open):
    ready: bool


class Error(BaseModel):
    error: str = Field(description="a stable code, e.g. invalid_field")
    message: str = Field(description="what is wrong and what fixes it")


class MlflowPredictions(Open):
    predictions: list[str] = Field(description="one topic per row, as `mlflow models serve` answers")
    request_ids: list[str] = Field(description="one per row, for POST /feedback")


class OutputTensor(Open):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


class InferResponse(Open):
    model_name: str
    id: str | None = None
    outputs: list[OutputTensor]


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
