"""`mlflow models serve`'s scoring protocol: a client written for it works by changing only the URL.

It takes the JSON payloads MLflow's scoring server takes for a model with a `text` column (see
mlflow.pyfunc.scoring_server: exactly one of `dataframe_split`, `dataframe_records`, `inputs`,
`instances`; `params` is accepted and ignored) and answers `{"predictions": [topic, ...]}`, what
that server answers for the registered sklearn pipeline, plus `request_ids` (one per row, for
`POST /feedback`). Each row is a ticket: its `customer_id` column, when present, decides its arm,
and it is logged and counted exactly like a `/predict` (router.answer). `/ping` and `/version`
answer as MLflow's do, so MLflow's ScoringServerClient can wait for the router.

Bad payloads answer 400 naming the problem, as MLflow's server does (in the router's error shape).
"""

from __future__ import annotations

from typing import Any

import mlflow.version
from flask import Blueprint, Response, g, jsonify, request

from router import batch, inputs, state
from router.answer import answer_all, serving_models
from router.api import MlflowPayload, MlflowPredictions, answers, api, explained
from router.errors import APIError

bp = Blueprint("invocations", __name__)

FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
BAD = 400


def _invalid(message: str) -> APIError:
    return APIError(BAD, "invalid_payload", message)


def _split(data: object) -> list[object]:
    """pandas' `split` orient: `columns` and `data` (rows as arrays); `index` is ignored."""
    if not isinstance(data, dict) or not isinstance(data.get("columns"), list) or not isinstance(data.get("data"),
                                                                                                   list):
        raise _invalid("'dataframe_split' must be an object with 'columns' (column names) and 'data' (rows as "
                       "arrays), as DataFrame.to_dict(orient='split') gives")
    columns = data["columns"]
    rows = data["data"]
    batch.check_size(len(rows), state.current().settings.router.max_batch, BAD)
    for position, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise _invalid(f"'dataframe_split' row {position} must be an array of {len(columns)} values, one per "
                           f"column {columns}")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _columns(data: dict[str, Any]) -> list[object]:
    """TF-serving columnar `inputs`: `{"text": [...], "customer_id": [...]}` (a scalar is one row)."""
    columns = {name: values if isinstance(values, list) else [values] for name, values in data.items()}
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise _invalid(f"the columns of 'inputs' have different lengths {sorted(lengths)}; each needs one value per "
                       "row")
    count = lengths.pop()
    batch.check_size(count, state.current().settings.router.max_batch, BAD)
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def rows(body: dict[str, Any]) -> list[object]:
    """The payload's rows as objects with a `text` field, whichever of MLflow's formats it uses."""
    given = [key for key in FORMATS if key in body]
    if len(given) != 1:
        raise _invalid(f"the body must have exactly one of the fields {list(FORMATS)}, as `mlflow models serve` "
                       f"takes; it has {sorted(body)}")
    key = given[0]
    data = body[key]
    if key == "dataframe_split":
        return _split(data)
    if isinstance(data, dict) and key == "inputs":
        return _columns(data)
    if not isinstance(data, list):
        raise _invalid(f"'{key}' must be an array of rows, got {inputs.json_type(data)}")
    # a bare string is a row with only a text: what `inputs: ["..."]` means for a one-column model
    return [{"text": row} if isinstance(row, str) else row for row in data]


def _tickets() -> list[inputs.Ticket]:
    """The tickets of the request's MLflow payload."""
    limits = state.current().settings.router
    body = inputs.json_object(request.mimetype, request.content_length, limits.max_batch_body_bytes,
                              request.get_data, inputs.BATCH_BODY_SETTING)
    return batch.tickets(rows(body), limits.max_text_chars, limits.max_batch, BAD)


@bp.post("/invocations")
@api.validate(json=MlflowPayload, resp=answers({200: MlflowPredictions}, 400, 413, 415, 503),
              validation_error_status=BAD, before=explained(_tickets))
def invocations() -> Response:
    """Score every row of an MLflow scoring payload, each through the A/B router."""
    router = state.current()
    answers_ = answer_all(router, serving_models(router), _tickets(), g.started)
    return jsonify(predictions=[result.outcome.served.topic for result in answers_],
                   request_ids=[result.request_id for result in answers_])


@bp.get("/ping")
def ping() -> Response:
    """MLflow's liveness probe (ScoringServerClient.wait_server_ready polls it)."""
    return Response("\n", status=200, mimetype="application/json")


@bp.get("/version")
def version() -> Response:
    """The MLflow version whose scoring protocol this speaks, as MLflow's server answers."""
    return Response(mlflow.version.VERSION, mimetype="text/plain")
