"""Who may call the guarded endpoints: bearer tokens, compared in constant time.

`POST /config` takes the admin token (TICKET_AB_ADMIN_TOKEN). `POST /feedback` takes one token per
integration (TICKET_AB_FEEDBACK_TOKENS, `source:token,...`) plus the single TICKET_AB_FEEDBACK_TOKEN
(source `api`); the token decides the source recorded with the feedback. No token configured: the
endpoint is off (403), never open. Checked before the body is read. The scoring endpoints' client
tokens (TICKET_AB_CLIENT_TOKENS) are parsed by the same rule (`parse_tokens`), see router.clients.
"""

from __future__ import annotations

import functools
import hmac

from router.errors import APIError
from ticket_ab.settings import RouterSettings

MAX_SOURCE_CHARS = 100
LEGACY_SOURCE = "api"  # the source of feedback sent with the single TICKET_AB_FEEDBACK_TOKEN
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ticket-ab"'}
FEEDBACK_SETTINGS = "TICKET_AB_FEEDBACK_TOKEN or TICKET_AB_FEEDBACK_TOKENS"


def feedback_tokens(per_source: str, legacy: str) -> dict[str, str]:
    """token -> source from `TICKET_AB_FEEDBACK_TOKENS` (`source:token,...`) plus the single
    `TICKET_AB_FEEDBACK_TOKEN`, which stays valid as source `api`."""
    return parse_tokens(per_source, legacy, "TICKET_AB_FEEDBACK_TOKENS")


def parse_tokens(per_source: str, legacy: str, setting: str, reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """token -> integration from a `name:token,...` setting plus a single token named `api`.

    A malformed entry is an error, not a token that silently never matches; so is a `reserved` name
    (the client tokens' `anonymous`, which would make a credential look like no credential).
    """
    tokens = {legacy: LEGACY_SOURCE} if legacy else {}
    for entry in filter(None, (part.strip() for part in per_source.split(","))):
        source, sep, token = entry.partition(":")
        if not sep or not source.strip() or not token.strip() or len(source.strip()) > MAX_SOURCE_CHARS:
            raise ValueError(f"{setting} must be 'name:token' pairs separated by commas "
                             f"(name 1 to {MAX_SOURCE_CHARS} characters); an entry is not")
        if source.strip() in reserved:
            raise ValueError(f"{setting} names an integration {source.strip()!r}, which is reserved")
        if token.strip() in tokens:
            raise ValueError(f"{setting} gives one token to two integrations; each integration needs its own")
        tokens[token.strip()] = source.strip()
    return tokens


def configured_feedback_tokens(settings: RouterSettings) -> dict[str, str]:
    """The router's feedback tokens, parsed once per settings; a malformed setting answers 503 naming it."""
    try:
        return _parsed_tokens(settings.feedback_tokens, settings.feedback_token)
    except ValueError as exc:
        raise APIError(503, "misconfigured", f"POST /feedback is unavailable: {exc}") from None


@functools.lru_cache(maxsize=8)
def _parsed_tokens(per_source: str, legacy: str) -> dict[str, str]:
    return feedback_tokens(per_source, legacy)


def feedback_source(header: str | None, tokens: dict[str, str]) -> str:
    """The source whose token the bearer header carries (compared in constant time against each)."""
    if not tokens:
        raise _disabled("POST /feedback", FEEDBACK_SETTINGS)
    given = bearer(header, "TICKET_AB_FEEDBACK_TOKEN", "POST /feedback").encode("utf-8")
    matched = [source for token, source in tokens.items() if hmac.compare_digest(given, token.encode("utf-8"))]
    if not matched:
        raise APIError(401, "unauthorized", "the bearer token is not valid for POST /feedback", CHALLENGE)
    return matched[0]


def require_bearer(header: str | None, token: str, env_var: str, endpoint: str) -> None:
    """Constant-time bearer check. No token configured: the endpoint is off (403), never open."""
    if not token:
        raise _disabled(endpoint, env_var)
    given = bearer(header, env_var, endpoint)
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise APIError(401, "unauthorized", f"the bearer token is not valid for {endpoint}", CHALLENGE)


def _disabled(endpoint: str, env_var: str) -> APIError:
    return APIError(403, "forbidden", f"{endpoint} is disabled because no token is configured; set {env_var} in the "
                    "router's environment and restart it")


def bearer(header: str | None, env_var: str, endpoint: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, or 401 saying what to send."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise APIError(401, "unauthorized", f"{endpoint} needs the header 'Authorization: Bearer <{env_var}>'",
                       CHALLENGE)
    return given.strip()
