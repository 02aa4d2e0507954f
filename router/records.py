"""The request-log and feedback-log rows, shaped by retrain.contracts.requestlog's column contracts.

The ticket text arrives PII-masked (the view masks it once, before scoring, because models train
on masked text and the log is what the DAG reads as training data); CsvAppender then folds every
field to one line.
"""

from __future__ import annotations

from datetime import UTC, datetime

from router.config import ABConfig
from router.inputs import Feedback, Ticket
from router.scoring import Outcome


def utc_now() -> str:
    """UTC ISO 8601 with milliseconds, as read_requests parses it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def request_row(
    request_id: str, ticket: Ticket, text: str, outcome: Outcome, config: ABConfig, latency_ms: float
) -> dict[str, object]:
    """One REQUEST_COLUMNS row: who asked, which arm and model answered, under which config, and the masked text."""
    served, shadow = outcome.served, outcome.shadow
    return {
        "timestamp": utc_now(),
        "request_id": request_id,
        "ticket_id": ticket.ticket_id,
        "customer_id": ticket.customer_id,
        "variant": outcome.variant,
        "model_alias": served.alias,
        "model_version": served.version,
        "split_b": config.ab_split_b,
        "mode": config.mode,
        "topic": served.topic,
        "confidence": served.confidence,
        "latency_ms": latency_ms,
        "fallback": outcome.fallback,
        "shadow_version": shadow.version if shadow else "",
        "shadow_topic": shadow.topic if shadow else "",
        "shadow_confidence": shadow.confidence if shadow else "",
        "text": text,
    }


def feedback_row(feedback: Feedback) -> dict[str, object]:
    """One FEEDBACK_COLUMNS row."""
    return {"timestamp": utc_now(), "request_id": feedback.request_id, "label": feedback.label,
            "source": feedback.source}
