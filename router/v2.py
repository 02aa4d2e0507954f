"""The Open Inference Protocol (KServe V2, Triton's HTTP API), so KServe, Seldon and Triton clients call the router.

The one model is the registered model the router serves (TICKET_AB_MODEL_NAME); its metadata lists
the versions behind the aliases, and every `infer` element is a ticket answered through the A/B
router (router.answer): its own arm, request-log row and metrics, as a `/predict` would give it.
Outputs: `topic` (BYTES [N]) and `scores` (FP32 [N, K], columns in the order of `parameters.topics`),
plus `variant`, `model_version` and `request_id` (BYTES [N]) to tell the arms apart and send feedback,
and `priority` (BYTES [N]) and `priority_scores` (FP32 [N, P], columns in the order of
`parameters.priorities`: every priority class either version answers, in the schema's order).

A tensor holds no null, yet a batch may mix a one-head version (it predicts topic only) with a
two-head one, e.g. a one-head champion beside a two-head challenger. The convention (also stated in
the model metadata, `parameters.priority_absent`, with each alias's `parameters.heads`): a ticket
answered by a one-head version has `priority` "" and a `priority_scores` row of zeros, which no
answered row can be (an answered row sums to 1).
"""

from __future__ import annotations

from importlib.metadata import version as distribution_version
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from router import body, contract, state, tensors
from router.answer import Answer, answer_all, serving_models
from router.errors import APIError
from router.models import Models
from router.openapi import AUTH_OPTIONAL, documented
from router.refusals import validated
from router.responses import InferResponse, Live, ModelMetadata, Ready, ServerMetadata
from router.tensors import BYTES, OUTPUTS
from ticket_ab.names import CHALLENGER, CHAMPION
from ticket_ab.schema import PRIORITIES

bp = Blueprint("v2", __name__, url_prefix="/v2")

SERVER = "ticket-ab-router"
DISTRIBUTION = "ticket-ab"
EXTENSIONS = ["binary_tensor_data"]  # inputs only; answers are JSON tensors, which every client reads
OPTIONAL = "customer_id"
JSON_LIKE = ("application/json", "application/octet-stream", "")  # Triton's client sends no Content-Type
PRIORITY_ABSENT = ("a ticket answered by a one-head version (see heads) has priority '' and a priority_scores row "
                   "of zeros (an answered row sums to 1): tensors hold no null")


def _model(name: str) -> state.RouterState:
    """The router state, or 404 naming the one model it serves."""
    router = state.current()
    if name != router.settings.model_name:
        raise APIError(404, "unknown_model", f"no model {name!r}; this router serves "
                       f"{router.settings.model_name!r} (GET /v2/models/{router.settings.model_name})")
    return router


@bp.get("")
@documented({200: ServerMetadata})
def server_metadata() -> Response:
    """Server name, version and protocol extensions."""
    return jsonify(name=SERVER, version=distribution_version(DISTRIBUTION), extensions=EXTENSIONS)


@bp.get("/health/live")
@documented({200: Live})
def live() -> Response:
    """Liveness, as GET /health."""
    return jsonify(live=True)


@bp.get("/health/ready")
@documented({200: Ready, 503: Ready})
def ready() -> tuple[Response, int]:
    """Readiness, as GET /ready: a champion and writable logs."""
    is_ready, _, _ = state.readiness(state.current())
    return jsonify(ready=is_ready), 200 if is_ready else 503


@bp.get("/models/<name>/ready")
@documented({200: Ready, 503: Ready}, 404)
def model_ready(name: str) -> tuple[Response, int]:
    """The model is ready when the router is: a champion and writable logs."""
    is_ready, _, _ = state.readiness(_model(name))
    return jsonify(name=name, ready=is_ready), 200 if is_ready else 503


@bp.get("/models/<name>")
@documented({200: ModelMetadata}, 404, 503)
def model_metadata(name: str) -> Response:
    """Inputs, outputs and the versions behind the aliases (champion first)."""
    models = serving_models(_model(name))
    serving = {alias: model for alias, model in ((CHAMPION, models.champion), (CHALLENGER, models.challenger))
               if model is not None}
    aliases = {alias: model.version for alias, model in serving.items()}
    priorities = priority_columns(models)
    shapes = {"scores": [-1, len(models.champion.classes)], "priority_scores": [-1, len(priorities)]}
    return jsonify(
        name=name, versions=list(dict.fromkeys(aliases.values())), platform="mlflow_sklearn",
        inputs=[{"name": tensors.TEXT, "datatype": BYTES, "shape": [-1]},
                {"name": OPTIONAL, "datatype": BYTES, "shape": [-1]}],
        outputs=[{"name": output, "datatype": "FP32" if output in shapes else BYTES, "shape": shapes.get(output, [-1])}
                 for output in OUTPUTS],
        parameters={"aliases": aliases, "topics": list(models.champion.classes), "optional_inputs": [OPTIONAL],
                    "priorities": list(priorities), "priority_absent": PRIORITY_ABSENT,
                    "heads": {alias: list(model.heads) for alias, model in serving.items()}},
    )


def priority_columns(models: Models) -> tuple[str, ...]:
    """The columns of `priority_scores`: every priority class either version answers, in the schema's order (any
    other after it, sorted), so each row sums to 1 whichever arm answered it; the schema's when neither version has
    a priority head."""
    found = {c for model in (models.champion, models.challenger) if model is not None for c in model.priority_classes}
    if not found:
        return PRIORITIES
    return (*(c for c in PRIORITIES if c in found), *sorted(found - set(PRIORITIES)))


def _infer_body(limit: int) -> tuple[dict[str, Any], bytes]:
    """The JSON part of the request and the binary part after it (empty without the binary extension)."""
    size = request.content_length
    split = tensors.header_length(request.headers.get(tensors.HEADER), size if size is not None else limit)
    mimetype = "application/json" if request.mimetype in JSON_LIKE else request.mimetype
    data = body.json_object(mimetype, size, limit, lambda: request.get_data()[:split], body.BATCH_BODY_SETTING)
    return data, request.get_data()[split:] if split is not None else b""


def _outputs(answers: list[Answer], topics: tuple[str, ...], priorities: tuple[str, ...],
             names: list[str]) -> list[dict[str, Any]]:
    count = len(answers)
    served = [a.outcome.served for a in answers]
    columns = {
        "topic": lambda: tensors.tensor("topic", BYTES, [count], [a.outcome.served.topic for a in answers]),
        "scores": lambda: tensors.tensor("scores", "FP32", [count, len(topics)],
                                         [a.outcome.served.scores.get(t, 0.0) for a in answers for t in topics]),
        "variant": lambda: tensors.tensor("variant", BYTES, [count], [a.outcome.variant for a in answers]),
        "model_version": lambda: tensors.tensor("model_version", BYTES, [count],
                                                [a.outcome.served.version for a in answers]),
        "request_id": lambda: tensors.tensor("request_id", BYTES, [count], [a.request_id for a in answers]),
        "priority": lambda: tensors.tensor("priority", BYTES, [count], [one.priority or "" for one in served]),
        "priority_scores": lambda: tensors.tensor("priority_scores", "FP32", [count, len(priorities)],
                                                  [(one.priority_scores or {}).get(p, 0.0)
                                                   for one in served for p in priorities]),
    }
    return [columns[name]() for name in names]


@bp.post("/models/<name>/infer")
@documented({200: InferResponse}, 400, 401, 404, 413, 415, 429, 503, body="infer", secured=AUTH_OPTIONAL)
def infer(name: str) -> Response:
    """Answer every element of the `text` input through the A/B router."""
    router = _model(name)
    integration = state.admit(f"POST /v2/models/{name}/infer")
    data, binary = _infer_body(router.settings.router.max_batch_body_bytes)
    models = contract.current()
    infer_request = validated(models.infer, data, tensors.BAD, tensors.INVALID)
    tickets = validated(models.tickets, tensors.rows(infer_request, binary), tensors.BAD).root
    state.charge_rest(integration, len(tickets))
    served = serving_models(router)
    answers = answer_all(router, served, tickets, g.started, integration)
    response: dict[str, Any] = {"model_name": name, "outputs": _outputs(
        answers, served.champion.classes, priority_columns(served), infer_request.requested())}
    if infer_request.id is not None:
        response["id"] = infer_request.id
    return jsonify(response)
