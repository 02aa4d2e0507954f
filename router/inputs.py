"""Turn untrusted request bodies and headers into typed values, or an APIError that says what to fix.

Pure functions over the request's pieces, so every bad-input rule is unit-testable and the views
stay thin. Status codes: 415 wrong content type, 413 too large, 400 not a JSON object at all,
422 a JSON object whose fields are missing or invalid, 401/403 authentication.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.config import ConfigError, parse_mode, parse_split
from router.errors import APIError
from ticket_ab.settings import RouterSettings

MAX_ID_CHARS = 200  # ticket, customer and request ids; longer values are not ids
MAX_SOURCE_CHARS = 100
LEGACY_SOURCE = "api"  # the source of feedback sent with the single TICKET_AB_FEEDBACK_TOKEN
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ticket-ab"'}
# A client's own request id (its idempotency key): short and safe to log, grep and put in a URL.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
CONFIG_FIELDS = ("ab_split_b", "mode", "updated_by")
BODY_SETTING = "TICKET_AB_MAX_BODY_BYTES"
BATCH_BODY_SETTING = "TICKET_AB_MAX_BATCH_BODY_BYTES"
_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True)
class Ticket:
    """A validated POST /predict body (ids normalised to stripped strings)."""

    text: str
    ticket_id: str | None = None
    customer_id: str | None = None
    request_id: str | None = None  # the client's own id, used instead of a fresh one


@dataclass(frozen=True)
class Feedback:
    """A validated POST /feedback body."""

    request_id: str
    label: str
    source: str


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages a client can act on."""
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def too_large(max_bytes: int, setting: str = BODY_SETTING) -> APIError:
    """413 naming the limit and the setting that sets it."""
    return APIError(413, "payload_too_large", f"request body is larger than {max_bytes} bytes (the limit is {setting})")


def json_object(mimetype: str, content_length: int | None, max_bytes: int, read: Callable[[], bytes],
                setting: str = BODY_SETTING) -> dict[str, Any]:
    """Decode a JSON object body; `read()` returns the raw bytes (and enforces the size for chunked bodies)."""
    if content_length is not None and content_length > max_bytes:
        raise too_large(max_bytes, setting)
    if mimetype != "application/json":
        raise APIError(415, "unsupported_media_type",
                       f"send the body as JSON with 'Content-Type: application/json' (got {mimetype or 'none'!r})")
    raw = read()
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise APIError(400, "invalid_json",
                       f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):
        raise APIError(400, "invalid_json", "request body is not valid JSON (bad UTF-8 or nested too deeply)") from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_json", f"request body must be a JSON object, got {json_type(body)}")
    return body


def _required_string(body: dict[str, Any], name: str, example: str) -> str:
    if name not in body or body[name] is None:
        raise APIError(422, "missing_field", f"field '{name}' is required, e.g. {{\"{name}\": \"{example}\"}}")
    value = body[name]
    if not isinstance(value, str):
        raise APIError(422, "invalid_field", f"field '{name}' must be a string, got {json_type(value)}")
    if not value.strip():
        raise APIError(422, "invalid_field", f"field '{name}' is empty")
    return value


def _optional_id(body: dict[str, Any], name: str) -> str | None:
    """Ids may arrive as strings or integers (CRM exports); null or absent means not given."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise APIError(422, "invalid_field", f"field '{name}' must be a string or an integer, got {json_type(value)}")
    text = str(value).strip()
    if not text:
        raise APIError(422, "invalid_field", f"field '{name}' is empty; omit it or send an id")
    if len(text) > MAX_ID_CHARS:
        raise APIError(422, "invalid_field", f"field '{name}' is longer than {MAX_ID_CHARS} characters")
    return text


def client_request_id(body: dict[str, Any]) -> str | None:
    """The client's own `request_id` (null or absent: the router makes one).

    Taken as sent, never normalised: a client that retries after a lost answer sends the same id, so
    a second row of the same request carries the id of the first and can be counted once.
    """
    value = body.get("request_id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise APIError(422, "invalid_field", f"field 'request_id' must be a string, got {json_type(value)}")
    if not CLIENT_REQUEST_ID.fullmatch(value):
        raise APIError(422, "invalid_field", "field 'request_id' must be 1 to 64 characters of A-Z, a-z, 0-9 "
                       "and _ . : - (or be omitted: the router then makes one)")
    return value


def ticket(body: dict[str, Any], max_chars: int) -> Ticket:
    """A POST /predict body; unknown fields are ignored so clients can send extra metadata."""
    text = _required_string(body, "text", "cannot connect to vpn")
    if len(text) > max_chars:
        raise APIError(413, "text_too_long", f"field 'text' has {len(text)} characters; the limit is {max_chars} "
                       "(TICKET_AB_MAX_TEXT_CHARS)")
    return Ticket(text=text, ticket_id=_optional_id(body, "ticket_id"), customer_id=_optional_id(body, "customer_id"),
                  request_id=client_request_id(body))


def config_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a POST /config; unknown keys are refused so a typo cannot silently do nothing."""
    unknown = sorted(set(body) - set(CONFIG_FIELDS))
    if unknown:
        raise APIError(422, "invalid_field", f"unknown config field(s) {unknown}; accepted: {list(CONFIG_FIELDS)}")
    if "ab_split_b" not in body and "mode" not in body:
        raise APIError(422, "missing_field",
                       "send 'ab_split_b' (a number in [0, 1]) and/or 'mode' ('split' or 'shadow')")
    changes: dict[str, Any] = {}
    try:
        if "ab_split_b" in body:
            changes["ab_split_b"] = parse_split(body["ab_split_b"])
        if "mode" in body:
            changes["mode"] = parse_mode(body["mode"])
    except ConfigError as exc:
        raise APIError(422, "invalid_field", str(exc)) from None
    changes["updated_by"] = _optional_id(body, "updated_by") or "api"
    return changes


def feedback(body: dict[str, Any], labels: tuple[str, ...], source: str) -> Feedback:
    """An agent's true topic for a served request; the label must be one the champion knows.

    `source` is the integration the bearer token belongs to (`feedback_source`). A `source` in the
    body is ignored, whatever it says: the source is what the guards against poisoning count, so it
    must be what the credential proves, not what a client claims. The response echoes the recorded
    source, so a client can see it.
    """
    request_id = _required_string(body, "request_id", "<request_id from /predict>").strip()
    if len(request_id) > MAX_ID_CHARS:
        raise APIError(422, "invalid_field", f"field 'request_id' is longer than {MAX_ID_CHARS} characters")
    label = _required_string(body, "label", labels[0] if labels else "billing").strip()
    if label not in labels:
        raise APIError(422, "unknown_label",
                       f"label {label!r} is not a known topic; known: {', '.join(sorted(labels))}")
    return Feedback(request_id=request_id, label=label, source=source)


def feedback_tokens(per_source: str, legacy: str) -> dict[str, str]:
    """token -> source from `TICKET_AB_FEEDBACK_TOKENS` (`source:token,...`) plus the single
    `TICKET_AB_FEEDBACK_TOKEN`, which stays valid as source `api`. A malformed entry is an error
    at startup, not a token that silently never matches."""
    tokens = {legacy: LEGACY_SOURCE} if legacy else {}
    for entry in filter(None, (part.strip() for part in per_source.split(","))):
        source, sep, token = entry.partition(":")
        if not sep or not source.strip() or not token.strip() or len(source.strip()) > MAX_SOURCE_CHARS:
            raise ValueError("TICKET_AB_FEEDBACK_TOKENS must be 'source:token' pairs separated by commas "
                             f"(source 1 to {MAX_SOURCE_CHARS} characters); an entry is not")
        if token.strip() in tokens:
            raise ValueError("TICKET_AB_FEEDBACK_TOKENS gives one token to two sources; each integration needs its own")
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
    env_var = "TICKET_AB_FEEDBACK_TOKEN or TICKET_AB_FEEDBACK_TOKENS"
    if not tokens:
        raise APIError(403, "forbidden", f"POST /feedback is disabled because no token is configured; set {env_var} "
                       "in the router's environment and restart it")
    given = _bearer(header, "TICKET_AB_FEEDBACK_TOKEN", "POST /feedback").encode("utf-8")
    matched = [source for token, source in tokens.items() if hmac.compare_digest(given, token.encode("utf-8"))]
    if not matched:
        raise APIError(401, "unauthorized", "the bearer token is not valid for POST /feedback", CHALLENGE)
    return matched[0]


def require_bearer(header: str | None, token: str, env_var: str, endpoint: str) -> None:
    """Constant-time bearer check. No token configured: the endpoint is off (403), never open."""
    if not token:
        raise APIError(403, "forbidden", f"{endpoint} is disabled because no token is configured; set {env_var} "
                       "in the router's environment and restart it")
    given = _bearer(header, env_var, endpoint)
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise APIError(401, "unauthorized", f"the bearer token is not valid for {endpoint}", CHALLENGE)


def _bearer(header: str | None, env_var: str, endpoint: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, or 401 saying what to send."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise APIError(401, "unauthorized", f"{endpoint} needs the header 'Authorization: Bearer <{env_var}>'",
                       CHALLENGE)
    return given.strip()
