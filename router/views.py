"""HTTP endpoints: parse with `inputs`, decide with `scoring`, record with the appenders.

Views only wire the pieces together; each rule they rely on lives (and is tested) in its module.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from retrain.contracts.log import get_logger, kv
from retrain.contracts.pii import mask
from router import inputs, metrics, state
from router.assign import assignment_key
from router.config import ConfigUnavailable
from router.errors import APIError
from router.records import feedback_row, request_row
from router.scoring import CHALLENGER_ERROR, serve

bp = Blueprint("router", __name__)
log = get_logger("router.views")
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


def _body() -> dict[str, Any]:
    limit = state.current().settings.router.max_body_bytes
    return inputs.json_object(request.mimetype, request.content_length, limit, request.get_data)


def _no_champion() -> APIError:
    """503 that says why there is no champion and what fixes it."""
    router = state.current()
    status = router.store.status()
    if status["registry"]["reachable"] is False:
        why = ("the registry is unreachable and no model is cached; start MLflow or point MLFLOW_TRACKING_URI at it, "
               "and the router loads the champion within TICKET_AB_RELOAD_S")
    elif status["last_error"]:
        why = "the champion could not be loaded (see last_error in GET /ready)"
    else:
        why = ("the registry has no version with alias 'champion'; point the alias at a registered version and the "
               "router loads it within TICKET_AB_RELOAD_S")
    return APIError(503, "no_champion", f"no champion model is loaded for '{status['model_name']}': {why}",
                    {"Retry-After": str(max(1, round(router.settings.router.reload_s)))})


@bp.post("/predict")
def predict() -> Response:
    """Answer one ticket from the assigned arm and log the row the A/B analysis reads."""
    router = state.current()
    ticket = inputs.ticket(_body(), router.settings.router.max_text_chars)
    g.request_id = ticket.request_id or g.request_id  # a client's retry keeps its id: one request, one id
    models = router.store.snapshot()
    if models.champion is None:
        raise _no_champion()
    config = router.config.current()
    text = mask(ticket.text)
    outcome = serve(text, models.champion, models.challenger, config,
                    assignment_key(ticket.customer_id, ticket.ticket_id))
    g.variant = outcome.variant
    if outcome.fallback:
        metrics.FALLBACKS.labels(reason=CHALLENGER_ERROR).inc()
        log.warning(kv("challenger_failed", request_id=g.request_id, version=models.challenger.version,
                       error=outcome.error))
    served = outcome.served
    metrics.PREDICTIONS.labels(variant=outcome.variant, topic=served.topic).inc()
    latency_ms = round((time.perf_counter() - g.started) * 1000.0, 3)
    logged = state.record(router.requests, request_row(g.request_id, ticket, text, outcome, config, latency_ms,
                                                      router.customer_key))
    return jsonify(request_id=g.request_id, variant=outcome.variant, model_alias=served.alias,
                   model_version=served.version, topic=served.topic, confidence=served.confidence,
                   scores=served.scores, latency_ms=latency_ms, logged=logged)


@bp.post("/feedback")
def feedback() -> tuple[Response, int]:
    """Record an agent's true topic for a served request (validated later by the DAG); the source
    recorded is the one the bearer token belongs to, never the body's."""
    router = state.current()
    source = inputs.feedback_source(request.headers.get("Authorization"),
                                    inputs.configured_feedback_tokens(router.settings.router))
    body = _body()
    champion = router.store.snapshot().champion
    if champion is None:
        raise _no_champion()
    item = inputs.feedback(body, champion.classes, source)
    if not state.record(router.feedback, feedback_row(item)):  # the row is all feedback is: the sender retries
        raise APIError(503, "log_unavailable", f"the feedback was not recorded: {router.feedback.error}; "
                       "send it again later", {"Retry-After": str(state.LOG_RETRY_AFTER_S)})
    return jsonify(status="accepted", request_id=item.request_id, label=item.label, source=item.source), 202


@bp.get("/config")
def get_config() -> Response:
    """The A/B config in effect (public: it holds no secret)."""
    return jsonify(state.current().config.current().to_dict())


@bp.post("/config")
def set_config() -> Response:
    """Change the split and/or mode for every worker of every replica (admin token).

    The config lives in the registry; if it cannot be written there, nothing changes anywhere
    (503), rather than this replica alone running a different experiment.
    """
    router = state.current()
    inputs.require_bearer(request.headers.get("Authorization"), router.settings.router.admin_token,
                          "TICKET_AB_ADMIN_TOKEN", "POST /config")
    changes = inputs.config_changes(_body())
    try:
        return jsonify(router.config.update(**changes).to_dict())
    except ConfigUnavailable as exc:
        raise APIError(503, "registry_unavailable",
                       f"the A/B config was not changed: it is kept in the MLflow registry, which cannot take it "
                       f"({exc}); every replica keeps serving the current config",
                       {"Retry-After": str(max(1, round(router.settings.router.reload_s)))}) from None


@bp.get("/health")
def health() -> Response:
    """Liveness: the process answers, whatever the models and the logs (a restart fixes neither)."""
    return jsonify(status="ok")


@bp.get("/ready")
def ready() -> tuple[Response, int]:
    """Readiness: 200 only with a champion and writable logs; says which versions and where they came from.

    A replica whose log cannot take rows answers 503 (with the log's error) so a load balancer sends
    traffic to replicas that record it; every call retries the log, so it comes back on its own.
    """
    router = state.current()
    status = router.store.status()
    logs = router.logs()
    is_ready = status["champion"] is not None and all(log["writable"] for log in logs.values())
    body = {"ready": is_ready, **status, "config": router.config.current().to_dict(), "logs": logs,
            "worker_pid": os.getpid()}
    return jsonify(body), 200 if is_ready else 503


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text exposition, merged over all gunicorn workers."""
    return Response(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
