"""HTTP endpoints: parse with `inputs`, decide with `scoring`, record with the appenders.

Views only wire the pieces together; each rule they rely on lives (and is tested) in its module.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from router import batch, inputs, metrics, state
from router.answer import answer, answer_all, serving_models
from router.api import (
    BEARER,
    Config,
    ConfigChange,
    Feedback,
    FeedbackAccepted,
    Health,
    PredictAnswer,
    PredictBody,
    Ready,
    answers,
    api,
    explained,
)
from router.config import ConfigUnavailable
from router.errors import APIError
from router.records import feedback_row
from router.scoring import CHALLENGER_ERROR

bp = Blueprint("router", __name__)
metrics.FALLBACKS.labels(reason=CHALLENGER_ERROR)  # exported as 0 from the start, so increase() sees the first one


@bp.before_app_request
def _start() -> None:
    g.started = time.perf_counter()
    g.request_id = uuid.uuid4().hex


@bp.after_app_request
def _observe(response: Response) -> Response:
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    variant = g.get("variant", "-")
    metrics.REQUESTS.labels(endpoint=endpoint, variant=variant, status=str(response.status_code)).inc()
    metrics.LATENCY.labels(endpoint=endpoint, variant=variant).observe(time.perf_counter() - g.started)
    return response


def _body(batch: bool = False) -> dict[str, Any]:
    """The JSON object body; the batch-capable endpoints take up to TICKET_AB_MAX_BATCH_BODY_BYTES."""
    limits = state.current().settings.router
    if batch:
        return inputs.json_object(request.mimetype, request.content_length, limits.max_batch_body_bytes,
                                  request.get_data, inputs.BATCH_BODY_SETTING)
    return inputs.json_object(request.mimetype, request.content_length, limits.max_body_bytes, request.get_data)


def _predict_input() -> inputs.Ticket | list[inputs.Ticket]:
    """The ticket of a /predict body, or its `tickets` (a batch): every rule on the body, in one place."""
    limits = state.current().settings.router
    body = _body(batch=True)
    if "tickets" not in body:
        if len(request.get_data()) > limits.max_body_bytes:  # one ticket keeps the single-request limit
            raise inputs.too_large(limits.max_body_bytes)
        return inputs.ticket(body, limits.max_text_chars)
    if "text" in body:
        raise APIError(422, "invalid_field", "send either 'text' (one ticket) or 'tickets' (a batch), not both")
    if not isinstance(body["tickets"], list):
        raise APIError(422, "invalid_field", f"field 'tickets' must be an array of ticket objects, got "
                       f"{inputs.json_type(body['tickets'])}")
    return batch.tickets(body["tickets"], limits.max_text_chars, limits.max_batch)


@bp.post("/predict")
@api.validate(json=PredictBody, resp=answers({200: PredictAnswer}, 400, 413, 415, 422, 503),
              before=explained(_predict_input))
def predict() -> Response:
    """Answer one ticket (or a `tickets` batch) from the assigned arm and log the rows the A/B analysis reads."""
    router = state.current()
    parsed = _predict_input()
    models = serving_models(router)
    if isinstance(parsed, list):
        return jsonify(results=[result.to_json() for result in answer_all(router, models, parsed, g.started)])
    g.request_id = parsed.request_id or g.request_id  # a client's retry keeps its id: one request, one id
    result = answer(router, models, router.config.current(), parsed, g.request_id, g.started)
    g.variant = result.outcome.variant
    return jsonify(result.to_json())


def _feedback_input() -> inputs.Feedback:
    """An authorised /feedback body for a label the champion knows (the token decides the source)."""
    router = state.current()
    source = inputs.feedback_source(request.headers.get("Authorization"),
                                    inputs.configured_feedback_tokens(router.settings.router))
    body = _body()
    return inputs.feedback(body, serving_models(router).champion.classes, source)


@bp.post("/feedback")
@api.validate(json=Feedback, resp=answers({202: FeedbackAccepted}, 400, 401, 403, 413, 415, 422, 503),
              security={BEARER: []}, before=explained(_feedback_input))
def feedback() -> tuple[Response, int]:
    """Record an agent's true topic for a served request (validated later by the DAG); the source
    recorded is the one the bearer token belongs to, never the body's."""
    router = state.current()
    item = _feedback_input()
    if not state.record(router.feedback, feedback_row(item)):  # the row is all feedback is: the sender retries
        raise APIError(503, "log_unavailable", f"the feedback was not recorded: {router.feedback.error}; "
                       "send it again later", {"Retry-After": str(state.LOG_RETRY_AFTER_S)})
    return jsonify(status="accepted", request_id=item.request_id, label=item.label, source=item.source), 202


@bp.get("/config")
@api.validate(resp=answers({200: Config}))
def get_config() -> Response:
    """The A/B config in effect (public: it holds no secret)."""
    return jsonify(state.current().config.current().to_dict())


def _config_input() -> dict[str, Any]:
    """The changes of an authorised POST /config."""
    inputs.require_bearer(request.headers.get("Authorization"), state.current().settings.router.admin_token,
                          "TICKET_AB_ADMIN_TOKEN", "POST /config")
    return inputs.config_changes(_body())


@bp.post("/config")
@api.validate(json=ConfigChange, resp=answers({200: Config}, 400, 401, 403, 413, 415, 422, 503),
              security={BEARER: []}, before=explained(_config_input))
def set_config() -> Response:
    """Change the split and/or mode for every worker of every replica (admin token).

    The config lives in the registry; if it cannot be written there, nothing changes anywhere
    (503), rather than this replica alone running a different experiment.
    """
    router = state.current()
    changes = _config_input()
    try:
        return jsonify(router.config.update(**changes).to_dict())
    except ConfigUnavailable as exc:
        raise APIError(503, "registry_unavailable",
                       f"the A/B config was not changed: it is kept in the MLflow registry, which cannot take it "
                       f"({exc}); every replica keeps serving the current config",
                       {"Retry-After": str(max(1, round(router.settings.router.reload_s)))}) from None


@bp.get("/health")
@api.validate(resp=answers({200: Health}))
def health() -> Response:
    """Liveness: the process answers, whatever the models and the logs (a restart fixes neither)."""
    return jsonify(status="ok")


@bp.get("/ready")
@api.validate(resp=answers({200: Ready, 503: Ready}))
def ready() -> tuple[Response, int]:
    """Readiness: 200 only with a champion and writable logs; says which versions and where they came from.

    A replica whose log cannot take rows answers 503 (with the log's error) so a load balancer sends
    traffic to replicas that record it; every call retries the log, so it comes back on its own.
    """
    router = state.current()
    is_ready, status, logs = state.readiness(router)
    body = {"ready": is_ready, **status, "config": router.config.current().to_dict(), "logs": logs,
            "worker_pid": os.getpid()}
    return jsonify(body), 200 if is_ready else 503


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text exposition, merged over all gunicorn workers."""
    return Response(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of every endpoint, generated from the models the router validates with."""
    return jsonify(api.spec)
