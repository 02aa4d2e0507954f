"""Every error leaves the router as `{"error": "<code>", "message": "<sentence>"}`.

Clients and on-call people read these, so the message names the field or the fix; nothing ever
returns HTML or a traceback (an unexpected exception is logged server-side with its traceback and
the client gets a generic 500 that carries the request id to grep for).
"""

from __future__ import annotations

import contextlib

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ticket_ab.log import get_logger, kv

log = get_logger("router.errors")
DRAIN_MAX_BYTES = 64 * 1024  # a refused request's unread body up to this is read (see _drain)

# Werkzeug's exception names, as stable snake_case codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "too_many_requests",
    503: "unavailable",
}
_HTTP_MESSAGES = {
    404: "no such endpoint; the router serves POST /predict, POST /feedback, GET|POST /config, "
    "GET /health, GET /ready, GET /metrics, POST /invocations and the V2 protocol under /v2",
}


class APIError(Exception):
    """An expected failure with a status, a stable code and a human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The one error shape of the API."""
    response = jsonify(error=code, message=message)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(exc: APIError) -> Response:
    _drain()
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def _drain() -> None:
    """Read what is left of a small request body before answering a refusal (a 401, 429 or 428 comes before
    the body is read): left unread, gunicorn may give up draining it and close the keep-alive connection
    under the client's next request. A larger body is left to gunicorn, which then closes the connection."""
    if request.content_length is not None and request.content_length <= DRAIN_MAX_BYTES:
        with contextlib.suppress(OSError, HTTPException):  # a client gone mid-body: nothing left to keep alive
            request.get_data(cache=False)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = _HTTP_MESSAGES.get(status) or exc.description or exc.name
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = (f"request body is larger than {limit} bytes, the most any endpoint takes (TICKET_AB_MAX_BODY_BYTES, "
                   "or TICKET_AB_MAX_BATCH_BODY_BYTES for /predict, /invocations and /v2/models/<name>/infer)")
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "www-authenticate", "retry-after")}
    return error_response(status, _HTTP_CODES.get(status, "http_error"), message, headers)


def _unexpected(exc: Exception) -> Response:
    request_id = g.get("request_id", "")
    log.exception(kv("unhandled_error", request_id=request_id, error=type(exc).__name__))
    return error_response(500, "internal_error", f"the router failed to handle this request (request_id {request_id}); "
                          "the server log has the details")


def register(app: Flask) -> None:
    """Install the JSON handlers; HTTPException before Exception so 404/405/413 keep their status."""
    app.register_error_handler(APIError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
