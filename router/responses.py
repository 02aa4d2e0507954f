"""What the router answers, as models: `GET /openapi.json` documents every answer with them.

Answers are built by the views (router.answer, router.v2, router.config), not from these models;
the schemathesis run against a live router (tests/integration/router) checks that they match.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

from router.fields import Open

ONE_HEAD = "null when the answering version is a one-head version, which predicts topic only (see priority_note)"


class Answer(Open):
    request_id: str
    variant: str
    model_alias: str
    model_version: str
    topic: str
    confidence: float = Field(description="the topic's probability")
    scores: dict[str, float] = Field(description="every topic's probability (the same as topic_scores; kept for "
                                     "existing clients)")
    topic_scores: dict[str, float] = Field(description="every topic's probability, summing to 1 up to rounding")
    priority: str | None = Field(description="the ticket's priority (low, medium, high, urgent): the likeliest, or "
                                 f"urgent when its probability reaches the version's urgent threshold; {ONE_HEAD}")
    priority_confidence: float | None = Field(description=f"the answered priority's probability; {ONE_HEAD}")
    priority_scores: dict[str, float] | None = Field(description="every priority's probability, summing to 1 up to "
                                                     f"rounding; {ONE_HEAD}")
    priority_note: str | None = Field(description="why the answer has no priority, e.g. 'v3 predicts topic only "
                                      "(one-head version)'; null when it has one")
    latency_ms: float
    logged: bool


class Results(Open):
    results: list[Answer]


class PredictAnswer(RootModel[Answer | Results]):
    """The answer to one ticket, or `{"results": [...]}` for a batch (in the order sent)."""


class FeedbackAccepted(Open):
    status: str
    request_id: str
    label: str | None = Field(description="the topic recorded (null: the feedback corrected only the priority)")
    priority: str | None = Field(description="the priority recorded (null: the feedback corrected only the topic)")
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
    topic_scores: list[dict[str, float]] = Field(description="per row, every topic's probability")
    priorities: list[str | None] = Field(description=f"per row, the ticket's priority; {ONE_HEAD}")
    priority_scores: list[dict[str, float] | None] = Field(
        description=f"per row, every priority's probability, summing to 1 up to rounding; {ONE_HEAD}")


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
    outputs: list[TensorMetadata] = Field(description="topic, scores (columns: parameters.topics), variant, "
                                          "model_version, request_id, priority, priority_scores (columns: "
                                          "parameters.priorities)")
    parameters: dict[str, Any] = Field(description="aliases (alias -> version), topics, priorities, heads (alias -> "
                                       "the heads its version answers), priority_absent (what a one-head version "
                                       "answers in the priority tensors), optional_inputs")


class ServerMetadata(Open):
    name: str
    version: str
    extensions: list[str]


class Live(Open):
    live: bool
