"""The request-log and feedback-log rows, shaped by ticket_ab.requestlog's column contracts.

The ticket text arrives PII-masked (the view masks it once, before scoring, because models train
on masked text and the log is what the DAG reads as training data); the log writer
(ticket_ab.logwriter) then folds every field to one line. A customer id that is personal data (an
e-mail address, a phone number) is logged as a keyed pseudonym: analysis still groups a customer's
rows, the log holds no address.
Assignment happens before and uses the id as sent, so pseudonymising changes no arm.
"""

from __future__ import annotations

from datetime import UTC, datetime

from router.config import ABConfig
from router.contract import Ticket
from router.scoring import Outcome
from ticket_ab.log import get_logger, kv
from ticket_ab.pii import is_personal, pseudonym

# Public, so pseudonyms made with it can be reversed by hashing candidate addresses: for demos only.
DEVELOPMENT_KEY = "ticket-ab-development-customer-key"
PSEUDONYM_PREFIX = "cust-"

log = get_logger("router.records")


def utc_now() -> str:
    """UTC ISO 8601 with milliseconds, as read_requests parses it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def customer_key(configured: str) -> bytes:
    """The pseudonym key (TICKET_AB_CUSTOMER_KEY).

    Every replica must use the same key, or one customer gets a different pseudonym per replica.
    Unset, the public DEVELOPMENT_KEY applies and a warning says so: the log still holds no
    address, but the pseudonyms can be reversed by anyone who guesses the address.
    """
    if not configured:
        log.warning(kv("customer_key_missing", env="TICKET_AB_CUSTOMER_KEY",
                       effect="customer ids that are e-mails or phones are hashed with the public development key"))
    return (configured or DEVELOPMENT_KEY).encode("utf-8")


def logged_customer(customer_id: str | None, key: bytes) -> str | None:
    """The customer id as the log may hold it: as sent, or a pseudonym when it is personal data."""
    if customer_id and is_personal(customer_id):
        return pseudonym(customer_id, key, PSEUDONYM_PREFIX)
    return customer_id


def request_row(
    request_id: str, ticket: Ticket, text: str, outcome: Outcome, config: ABConfig, latency_ms: float,
    customer_key: bytes, integration: str,
) -> dict[str, object]:
    """One REQUEST_COLUMNS row: who asked (and through which integration), which arm and model answered, under
    which config, the champion's confidence (blank when it did not score the ticket), the priority (blank from a
    one-head version), and the masked text."""
    served, shadow = outcome.served, outcome.shadow
    return {
        "timestamp": utc_now(),
        "request_id": request_id,
        "ticket_id": logged_customer(ticket.ticket_id, customer_key),  # it stands in for the customer when absent
        "customer_id": logged_customer(ticket.customer_id, customer_key),
        "variant": outcome.variant,
        "model_alias": served.alias,
        "model_version": served.version,
        "split_b": config.ab_split_b,
        "mode": config.mode,
        "experiment_id": config.experiment_id,
        "topic": served.topic,
        "confidence": served.confidence,
        "latency_ms": latency_ms,
        "fallback": outcome.fallback,
        "shadow_version": shadow.version if shadow else "",
        "shadow_topic": shadow.topic if shadow else "",
        "shadow_confidence": shadow.confidence if shadow else "",
        "champion_confidence": "" if outcome.champion_confidence is None else outcome.champion_confidence,
        "integration": integration,
        "priority": _blank(served.priority),  # blank: the version answering has no priority head
        "priority_confidence": _blank(served.priority_confidence),
        "shadow_priority": _blank(shadow.priority) if shadow else "",
        "text": text,
    }


def feedback_row(request_id: str, label: str | None, source: str, priority: str | None = None) -> dict[str, object]:
    """One FEEDBACK_COLUMNS row: the source is the one the bearer token proves (router.auth); a label or a
    priority not sent is blank (the join keeps each field's last value on its own)."""
    return {"timestamp": utc_now(), "request_id": request_id, "label": _blank(label), "source": source,
            "priority": _blank(priority)}


def _blank(value: object) -> object:
    return "" if value is None else value
