"""Everything a worker's views share, built once per app by `create_app`, and how rows reach the logs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request

from router import metrics
from router.clients import ANONYMOUS, Clients
from router.config import ConfigStore
from router.store import Store
from ticket_ab.log import get_logger, kv
from ticket_ab.logwriter import LogWriteError, ShardedLog
from ticket_ab.settings import Settings

EXTENSION = "ticket_ab"
LOG_RETRY_AFTER_S = 60  # what a 503 for an unwritable log asks the client to wait

log = get_logger("router.logs")


@dataclass(frozen=True)
class RouterState:
    """One app's settings, model store, shared config and log writers."""

    settings: Settings
    store: Store
    config: ConfigStore
    requests: ShardedLog
    feedback: ShardedLog
    customer_key: bytes  # keys the logged pseudonyms of personal customer ids
    clients: Clients  # the scoring endpoints' client tokens and rate limits

    def logs(self) -> dict[str, dict[str, Any]]:
        """Whether each log takes rows (a failed one is retried first) and how many rows it lost."""
        return {writer.kind: {"writable": (error := writer.check()) is None, "error": error,
                              "lost_rows": writer.failures}
                for writer in (self.requests, self.feedback)}


def current() -> RouterState:
    """The state of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def admit(endpoint: str) -> str:
    """The integration the current scoring request comes from, charged one ticket: 401 without a valid
    client token (where one is needed), 429 over its rate limit. Called before the body is read."""
    clients = current().clients
    g.integration = ANONYMOUS  # a refused credential is counted as anonymous
    g.integration = clients.integration(request.headers.get("Authorization"), endpoint)
    clients.charge(g.integration, 1)
    return g.integration


def charge_rest(integration: str, tickets: int) -> None:
    """Charge a parsed batch's other tickets (its first was charged at the door by `admit`)."""
    current().clients.charge(integration, tickets - 1)


def record(writer: ShardedLog, row: Mapping[str, object]) -> bool:
    """Append `row`; a write error is counted and logged here, and the caller decides the answer.

    Never raises: a full disk must not turn a finished prediction into a 500. The writer leaves no
    half row behind and remembers the error, so GET /ready reports it until a write succeeds again.
    """
    try:
        writer.append(row)
    except LogWriteError as exc:
        metrics.LOG_WRITE_FAILURES.labels(log=writer.kind).inc()
        log.warning(kv("log_write_failed", log=writer.kind, request_id=row.get("request_id"), error=str(exc)))
        return False
    return True


def readiness(router: RouterState) -> tuple[bool, dict[str, Any], dict[str, dict[str, Any]]]:
    """Ready to take traffic (a champion and writable logs), with the store's status and the logs' state."""
    status = router.store.status()
    logs = router.logs()
    return status["champion"] is not None and all(log["writable"] for log in logs.values()), status, logs
