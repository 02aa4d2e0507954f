"""A request body as a JSON object, or the APIError that says what is wrong with it before any field is read.

415 for a content type other than JSON, 413 above the endpoint's byte limit, 400 for bytes that
are not JSON (bad UTF-8, a syntax error), JSON that is not an object, nested more than MAX_DEPTH
levels deep (no body of ours needs more; deeper ones only cost work), or an object naming one field
twice (JSON parsers silently keep one of them: which one a client meant is not ours to guess). What
the object's fields must be is the contract's job (router.contract).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from router.errors import APIError
from router.wording import json_type
from ticket_ab.settings import env_names

BODY_SETTING = env_names()["router.max_body_bytes"]
BATCH_BODY_SETTING = env_names()["router.max_batch_body_bytes"]
JSON = "application/json"
MAX_DEPTH = 16  # levels of arrays and objects; a V2 tensor of a batch needs 5


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        keys = [key for key, _ in pairs]
        raise _DuplicateKey(next(key for i, key in enumerate(keys) if key in keys[:i]))
    return body


def depth(value: Any) -> int:
    """Levels of arrays and objects in a decoded JSON value, counted without recursion, up to MAX_DEPTH + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest if isinstance(value, (dict, list)) else 0


def too_large(max_bytes: int, setting: str = BODY_SETTING) -> APIError:
    """413 naming the limit and the setting that sets it."""
    return APIError(413, "payload_too_large", f"request body is larger than {max_bytes} bytes (the limit is {setting})")


def json_object(mimetype: str, content_length: int | None, max_bytes: int, read: Callable[[], bytes],
                setting: str = BODY_SETTING) -> dict[str, Any]:
    """Decode a JSON object body; `read()` returns the raw bytes (and enforces the size for chunked bodies)."""
    if content_length is not None and content_length > max_bytes:
        raise too_large(max_bytes, setting)
    if mimetype != JSON:
        raise APIError(415, "unsupported_media_type",
                       f"send the body as JSON with 'Content-Type: {JSON}' (got {mimetype or 'none'!r})")
    try:
        body = json.loads(read(), object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise APIError(400, "duplicate_field", f"request body names field {exc.key!r} twice in one object; send "
                       "each field once") from None
    except json.JSONDecodeError as exc:
        raise APIError(400, "invalid_json",
                       f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):
        raise APIError(400, "invalid_json", "request body is not valid JSON (bad UTF-8 or nested too deeply)") from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_json", f"request body must be a JSON object, got {json_type(body)}")
    if depth(body) > MAX_DEPTH:
        raise APIError(400, "invalid_json", f"request body is nested more than {MAX_DEPTH} levels deep")
    return body
