"""One ticket's way through the router, whatever protocol it came in by: mask, assign, score, count, log.

`/predict` (one ticket or a batch), `/invocations` and `/v2/.../infer` only parse differently; every
ticket they carry is answered here, so each gets its own arm, request-log row and metrics exactly
as a single `/predict` would give it, and an A/B analysis cannot tell the protocols apart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from router import metrics, state
from router.assign import assignment_key
from router.config import ABConfig
from router.contract import Ticket
from router.errors import APIError
from router.models import Models
from router.records import request_row
from router.scoring import CHALLENGER_ERROR, Outcome, Prediction, serve, serve_all
from ticket_ab.log import get_logger, kv
from ticket_ab.pii import mask

log = get_logger("router.answer")


@dataclass(frozen=True)
class Answer:
    """One answered ticket: what the caller gets back and whether the log has its row."""

    request_id: str
    outcome: Outcome
    latency_ms: float
    logged: bool

    def to_json(self) -> dict[str, Any]:
        """The `/predict` answer for one ticket (the body of a single-ticket response): `scores` stays beside
        `topic_scores` (the same) for the clients that read it; a one-head version's priority fields are null,
        and `priority_note` says why."""
        served = self.outcome.served
        return {"request_id": self.request_id, "variant": self.outcome.variant, "model_alias": served.alias,
                "model_version": served.version, "topic": served.topic, "confidence": served.confidence,
                "scores": served.scores, "topic_scores": served.scores, "priority": served.priority,
                "priority_confidence": served.priority_confidence, "priority_scores": served.priority_scores,
                "priority_note": priority_note(served), "latency_ms": self.latency_ms, "logged": self.logged}


def priority_note(prediction: Prediction) -> str | None:
    """Why an answer carries no priority (None when it does): the version that answered predicts topic only."""
    return None if prediction.priority is not None else f"v{prediction.version} predicts topic only (one-head version)"


def no_champion(router: state.RouterState) -> APIError:
    """503 that says why there is no champion and what fixes it."""
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


def serving_models(router: state.RouterState) -> Models:
    """The snapshot one request uses from start to finish, or 503 when there is no champion to answer."""
    models = router.store.snapshot()
    if models.champion is None:
        raise no_champion(router)
    return models


def _finish(router: state.RouterState, models: Models, config: ABConfig, ticket: Ticket, text: str,
            outcome: Outcome, request_id: str, started: float, integration: str) -> Answer:
    """Count the answer and append its request-log row (latency counted from `started`)."""
    if outcome.fallback:
        metrics.FALLBACKS.labels(reason=CHALLENGER_ERROR).inc()
        log.warning(kv("challenger_failed", request_id=request_id, version=models.challenger.version,
                       error=outcome.error))
    if outcome.champion_error:
        metrics.CHAMPION_SCORE_FAILURES.inc()
        log.warning(kv("champion_confidence_failed", request_id=request_id, version=models.champion.version,
                       error=outcome.champion_error))
    metrics.PREDICTIONS.labels(variant=outcome.variant, topic=outcome.served.topic).inc()
    latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
    logged = state.record(router.requests, request_row(request_id, ticket, text, outcome, config, latency_ms,
                                                      router.customer_key, integration))
    return Answer(request_id, outcome, latency_ms, logged)


def answer(router: state.RouterState, models: Models, config: ABConfig, ticket: Ticket, request_id: str,
           started: float, integration: str) -> Answer:
    """Answer one ticket from its arm (the single-ticket `/predict`) for `integration` (router.clients)."""
    text = mask(ticket.text)
    outcome = serve(text, models.champion, models.challenger, config,
                    assignment_key(ticket.customer_id, ticket.ticket_id),
                    score_champion=router.settings.router.log_champion_confidence)
    return _finish(router, models, config, ticket, text, outcome, request_id, started, integration)


def answer_all(router: state.RouterState, models: Models, tickets: Sequence[Ticket], started: float,
               integration: str) -> list[Answer]:
    """Answer a batch under one model snapshot and one config, each arm's tickets scored together.

    Each ticket gets its own request id (the client's `request_id` when it sent one), so feedback
    can name any of them.
    """
    config = router.config.current()
    texts = [mask(ticket.text) for ticket in tickets]
    outcomes = serve_all(texts, models.champion, models.challenger, config,
                         [assignment_key(ticket.customer_id, ticket.ticket_id) for ticket in tickets],
                         score_champion=router.settings.router.log_champion_confidence)
    return [_finish(router, models, config, ticket, text, outcome, ticket.request_id or uuid.uuid4().hex, started,
                    integration)
            for ticket, text, outcome in zip(tickets, texts, outcomes, strict=True)]
