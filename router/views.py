"""HTTP endpoints: decode with `body`, validate with the app's `contract`, decide with `scoring`, record
with the appenders.

Views only wire the pieces together; each rule they rely on lives (and is tested) in its module:
body rules in the contract's models, tokens in `auth`, the one rule that needs the champion (a
feedback label it knows) here.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from router import auth, body, contract, metrics, openapi, state
from router.answer import answer, answer_all, serving_models
from router.config import ABConfig, ConfigUnavailable, PreconditionFailed
from router.errors import APIError
from router.openapi import AUTH_OPTIONAL, documented
from router.records import feedback_row
from router.refusals import validated
from router.responses import Config, FeedbackAccepted, Health, PredictAnswer, Ready
from router.scoring import CHALLENGER_ERROR
from router.wording import quoted
from ticket_ab.schema import PRIORITIES

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
    if "integration" in g:  # a scoring endpoint: counted per integration
        metrics.CLIENT_REQUESTS.labels(integration=g.integration, status=str(response.status_code)).inc()
    return response


def _body(batch: bool = False) -> dict[str, Any]:
    """The JSON object body; the batch-capable endpoints take up to TICKET_AB_MAX_BATCH_BODY_BYTES."""
    limits = state.current().settings.router
    if batch:
        return body.json_object(request.mimetype, request.content_length, limits.max_batch_body_bytes,
                                request.get_data, body.BATCH_BODY_SETTING)
    return body.json_object(request.mimetype, request.content_length, limits.max_body_bytes, request.get_data)


def _predict_input() -> contract.Ticket | contract.TicketBatch:
    """The ticket of a /predict body, or its `tickets` batch; one ticket keeps the single-request byte limit."""
    limits = state.current().settings.router
    data = _body(batch=True)
    if contract.BATCH not in data and len(request.get_data()) > limits.max_body_bytes:
        raise body.too_large(limits.max_body_bytes)
    return validated(contract.current().predict, data).root


@bp.post("/predict")
@documented({200: PredictAnswer}, 400, 401, 413, 415, 422, 429, 503, body="predict", secured=AUTH_OPTIONAL)
def predict() -> Response:
    """Answer one ticket (or a `tickets` batch) from the assigned arm and log the rows the A/B analysis reads."""
    router = state.current()
    integration = state.admit("POST /predict")
    parsed = _predict_input()
    models = serving_models(router)
    if isinstance(parsed, contract.TicketBatch):
        state.charge_rest(integration, len(parsed.tickets))
        return jsonify(results=[result.to_json() for result in answer_all(router, models, parsed.tickets,
                                                                           g.started, integration)])
    g.request_id = parsed.request_id or g.request_id  # a client's retry keeps its id: one request, one id
    result = answer(router, models, router.config.current(), parsed, g.request_id, g.started, integration)
    g.variant = result.outcome.variant
    return jsonify(result.to_json())


def _known_label(label: str, labels: tuple[str, ...]) -> str:
    """The label, if the champion knows it: feedback trains the next model, so an unknown topic is refused."""
    if label not in labels:
        raise APIError(422, "unknown_label",
                       f"label {quoted(label)} is not a known topic; known: {', '.join(sorted(labels))}")
    return label


def _known_priority(priority: str) -> str:
    """The priority, if the schema knows it: not only the champion's priority classes, since feedback is how a
    class the head never saw (or a first priority head) gets trained."""
    if priority not in PRIORITIES:
        raise APIError(422, "unknown_priority",
                       f"priority {quoted(priority)} is not a known priority; known: {', '.join(PRIORITIES)}")
    return priority


@bp.post("/feedback")
@documented({202: FeedbackAccepted}, 400, 401, 403, 413, 415, 422, 503, body="feedback", secured=True)
def feedback() -> tuple[Response, int]:
    """Record an agent's true topic and/or priority for a served request (validated later by the DAG); the source
    recorded is the one the bearer token belongs to, never the body's."""
    router = state.current()
    source = auth.feedback_source(request.headers.get("Authorization"),
                                  auth.configured_feedback_tokens(router.settings.router))
    item = validated(contract.current().feedback, _body())
    champion = serving_models(router).champion
    label = None if item.label is None else _known_label(item.label, champion.classes)
    priority = None if item.priority is None else _known_priority(item.priority)
    if not state.record(router.feedback, feedback_row(item.request_id, label, source, priority)):
        # the row is all feedback is: the sender retries
        raise APIError(503, "log_unavailable", f"the feedback was not recorded: {router.feedback.error}; "
                       "send it again later", {"Retry-After": str(state.LOG_RETRY_AFTER_S)})
    return jsonify(status="accepted", request_id=item.request_id, label=label, priority=priority, source=source), 202


def etag(version: int) -> str:
    """The strong entity tag of the stored config at `version`, as an ETag or If-Match header carries it."""
    return f'"{version}"'


def _with_etag(config: ABConfig) -> Response:
    response = jsonify(config.to_dict())
    response.headers["ETag"] = etag(config.version)
    return response


def _if_match(current: int) -> frozenset[int] | None:
    """The versions the request's If-Match accepts (None: `*`, any); 428 without the header.

    Weak tags never match (RFC 9110 compares If-Match strongly), nor does a tag that is no version of ours.
    """
    if "If-Match" not in request.headers:
        raise APIError(428, "precondition_required",
                       f"POST /config needs the header 'If-Match: <ETag of GET /config>' (now {etag(current)}), "
                       "so a change made since you read the config is not overwritten unseen; 'If-Match: *' "
                       "changes whatever is set", {"ETag": etag(current)})
    if request.if_match.star_tag:
        return None
    return frozenset(int(tag) for tag in request.if_match.as_set() if tag.isascii() and tag.isdigit())


@bp.get("/config")
@documented({200: Config})
def get_config() -> Response:
    """The A/B config in effect (public: it holds no secret); its ETag is the stored config's version."""
    return _with_etag(state.current().config.current())


@bp.post("/config")
@documented({200: Config}, 400, 401, 403, 412, 413, 415, 422, 428, 503, body="config", secured=True)
def set_config() -> Response:
    """Change the split and/or mode for every worker of every replica (admin token, If-Match).

    The config lives in a transactional store and the change is a compare-and-swap on its version:
    `If-Match` must carry the ETag of the GET /config it was decided on (or `*`), else 412 names the
    current one; without If-Match, 428. If the store cannot take it, nothing changes anywhere (503).
    """
    router = state.current()
    auth.require_bearer(request.headers.get("Authorization"), router.settings.router.admin_token,
                        "TICKET_AB_ADMIN_TOKEN", "POST /config")
    expected = _if_match(router.config.current().version)
    changes = validated(contract.current().config, _body()).changes()
    try:
        return _with_etag(router.config.update(**changes, if_match=expected))
    except PreconditionFailed as exc:
        raise APIError(412, "precondition_failed",
                       f"the A/B config changed since the ETag you sent: it is now {etag(exc.version)}; GET /config, "
                       "decide again and send its ETag", {"ETag": etag(exc.version)}) from None
    except ConfigUnavailable as exc:
        raise APIError(503, "config_store_unavailable",
                       f"the A/B config was not changed: its store cannot take it ({exc}); every replica keeps "
                       "serving the current config",
                       {"Retry-After": str(max(1, round(router.settings.router.reload_s)))}) from None


@bp.get("/health")
@documented({200: Health})
def health() -> Response:
    """Liveness: the process answers, whatever the models and the logs (a restart fixes neither)."""
    return jsonify(status="ok")


@bp.get("/ready")
@documented({200: Ready, 503: Ready})
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
def openapi_json() -> Response:
    """The OpenAPI 3.1 document of every endpoint, generated from the models the router validates with."""
    return jsonify(current_app.extensions[openapi.EXTENSION])
