"""How a message names a refused value: by its JSON type, or by a short quote of it.

Messages go back to the client and into logs, so a quote is capped: a 4 MiB string sent where a
mode name belongs must not come back as a 4 MiB message.
"""

from __future__ import annotations

_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}
MAX_QUOTE = 80


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages a client can act on."""
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def quoted(value: object) -> str:
    """`repr(value)`, shortened to MAX_QUOTE characters."""
    text = repr(value)
    return text if len(text) <= MAX_QUOTE else f"{text[:MAX_QUOTE - 3]}..."
