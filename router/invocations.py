"""`mlflow models serve`'s scoring protocol: a client written for it works by changing only the URL.

It takes the JSON payloads MLflow's scoring server takes for a model with a `text` column (the
rules are the model router.mlflow_payload.MlflowPayload) and answers `{"predictions": [topic, ...]}`,
what that server answers for the registered sklearn pipeline, plus `request_ids` (one per row, for
`POST /feedback`) and, per row, `topic_scores`, `priorities` and `priority_scores` (null in a row
answered by a one-head version, which predicts topic only). Each row is a ticket: its `customer_id`
column, when present, decides its arm, and it is logged and counted exactly like a `/predict`
(router.answer). `/ping` and `/version` answer as MLflow's do, so MLflow's ScoringServerClient can
wait for the router.

Bad payloads answer 400 naming the problem, as MLflow's server does (in the router's error shape).
"""

from __future__ import annotations

import mlflow.version
from flask import Blueprint, Response, g, jsonify, request

from router import body, contract, state
from router.answer import answer_all, serving_models
from router.mlflow_payload import INVALID
from router.openapi import AUTH_OPTIONAL, documented
from router.refusals import validated
from router.responses import MlflowPredictions

bp = Blueprint("invocations", __name__)

BAD = 400


def _tickets() -> list[contract.Ticket]:
    """The tickets of the request's MLflow payload, each checked as a /predict ticket."""
    limits = state.current().settings.router
    data = body.json_object(request.mimetype, request.content_length, limits.max_batch_body_bytes,
                            request.get_data, body.BATCH_BODY_SETTING)
    models = contract.current()
    payload = validated(models.invocations, data, BAD, INVALID)
    return validated(models.tickets, payload.rows(), BAD).root


@bp.post("/invocations")
@documented({200: MlflowPredictions}, 400, 401, 413, 415, 429, 503, body="invocations", secured=AUTH_OPTIONAL)
def invocations() -> Response:
    """Score every row of an MLflow scoring payload, each through the A/B router."""
    router = state.current()
    integration = state.admit("POST /invocations")
    tickets = _tickets()
    state.charge_rest(integration, len(tickets))
    answers_ = answer_all(router, serving_models(router), tickets, g.started, integration)
    served = [result.outcome.served for result in answers_]
    return jsonify(predictions=[one.topic for one in served], request_ids=[result.request_id for result in answers_],
                   topic_scores=[one.scores for one in served], priorities=[one.priority for one in served],
                   priority_scores=[one.priority_scores for one in served])


@bp.get("/ping")
def ping() -> Response:
    """MLflow's liveness probe (ScoringServerClient.wait_server_ready polls it)."""
    return Response("\n", status=200, mimetype="application/json")


@bp.get("/version")
def version() -> Response:
    """The MLflow version whose scoring protocol this speaks, as MLflow's server answers."""
    return Response(mlflow.version.VERSION, mimetype="text/plain")
