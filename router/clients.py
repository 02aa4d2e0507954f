"""Who may score, and how fast: one bearer token per integration and a token bucket per integration.

The scoring endpoints (`/predict`, `/invocations`, `/v2/models/<name>/infer`) take a client token
(TICKET_AB_CLIENT_TOKENS, `integration:token,...`, plus the single TICKET_AB_CLIENT_TOKEN as
integration `api`). The token decides the integration a request is counted, logged and limited as,
so the A/B analysis can count authenticated traffic only and no client can pass for another.

- With client tokens set, a request without one is refused (401 naming the settings) unless
  TICKET_AB_ALLOW_ANONYMOUS is true; a wrong token is refused either way (a bad credential is never
  downgraded to none). Anonymous requests share one integration, `anonymous`.
- With no client token set, scoring is open, as a development router on 127.0.0.1 is, every request
  is `anonymous`, and the app logs a warning at start. The production topology always sets tokens.

The rate limit is a token bucket per integration in each worker, refilled at TICKET_AB_CLIENT_RATE
divided by the replica's workers, holding at most TICKET_AB_CLIENT_BURST tickets (never fewer than a
full batch): memory only, no lock shared between processes, no network round trip, one short
uncontended lock per request. A batch costs one ticket at the door (checked before the body is
read, so a flood is refused cheaply) and the rest once it is parsed. Over the limit: 429 with
`Retry-After`. It applies to every integration once client tokens are set (anonymous included),
and not at all on an open router.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from dataclasses import dataclass, field

from router import auth
from router.errors import APIError
from ticket_ab.log import get_logger, kv
from ticket_ab.requestlog import ANONYMOUS
from ticket_ab.settings import RouterSettings

__all__ = ["ANONYMOUS", "Clients", "TokenBucket", "for_settings"]
TOKEN_SETTINGS = "TICKET_AB_CLIENT_TOKEN or TICKET_AB_CLIENT_TOKENS"

log = get_logger("router.clients")


class TokenBucket:
    """`rate` tickets per second, at most `capacity` saved up; thread-safe, one process."""

    __slots__ = ("_lock", "capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.stamp = capacity, time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: float) -> float:
        """Take `n` tickets and return 0, or take nothing and return the seconds until `n` are there."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= n:
                self.tokens -= n
                return 0.0
            return (n - self.tokens) / self.rate


@dataclass(frozen=True)
class Clients:
    """One app's client tokens, whether anonymous requests are served, and a bucket per integration."""

    tokens: dict[str, str]  # token -> integration
    anonymous: bool
    rate: float  # tickets per second per integration on one replica (0: no limit)
    workers: int
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    @property
    def on(self) -> bool:
        """Credentials are on: at least one client token is configured."""
        return bool(self.tokens)

    def integration(self, header: str | None, endpoint: str) -> str:
        """The integration whose token the bearer header carries, `anonymous` where that is allowed, or 401."""
        if not self.tokens or (header is None and self.anonymous):
            return ANONYMOUS
        if header is None:
            raise APIError(401, "unauthorized", f"{endpoint} needs the header 'Authorization: Bearer <client token>' "
                           f"({TOKEN_SETTINGS}); this router refuses anonymous requests (TICKET_AB_ALLOW_ANONYMOUS "
                           "is false)", auth.CHALLENGE)
        given = auth.bearer(header, "TICKET_AB_CLIENT_TOKENS", endpoint).encode("utf-8")
        matched = [name for token, name in self.tokens.items() if hmac.compare_digest(given, token.encode())]
        if not matched:
            raise APIError(401, "unauthorized", f"the bearer token is not a client token of {endpoint} "
                           f"({TOKEN_SETTINGS})", auth.CHALLENGE)
        return matched[0]

    def charge(self, integration: str, tickets: int) -> None:
        """Take `tickets` from the integration's bucket, or 429 with Retry-After naming the limit."""
        bucket = self.buckets.get(integration)
        if bucket is None or tickets <= 0:
            return
        wait = bucket.take(tickets)
        if wait:
            retry = max(1, math.ceil(wait))
            raise APIError(429, "rate_limited", f"integration {integration!r} is over its rate limit of "
                           f"{self.rate:g} tickets/s per replica (TICKET_AB_CLIENT_RATE, bursts up to "
                           f"{bucket.capacity:g} per worker: TICKET_AB_CLIENT_BURST); retry after {retry} s",
                           {"Retry-After": str(retry)})


def for_settings(settings: RouterSettings) -> Clients:
    """The app's clients; a malformed token setting stops the app (a router must not start half-open)."""
    tokens = auth.parse_tokens(settings.client_tokens, settings.client_token, "TICKET_AB_CLIENT_TOKENS",
                               reserved=(ANONYMOUS,))
    clients = Clients(tokens, settings.allow_anonymous, settings.client_rate, settings.workers)
    if not tokens:
        log.warning(kv("client_tokens_missing", env=TOKEN_SETTINGS, effect="the scoring endpoints answer anyone, "
                       "unlimited, as integration 'anonymous'"))
        return clients
    if settings.client_rate > 0:
        per_worker = settings.client_rate / settings.workers
        capacity = float(max(settings.client_burst, settings.max_batch))
        for name in {*tokens.values(), ANONYMOUS}:
            clients.buckets[name] = TokenBucket(per_worker, capacity)
    return clients
