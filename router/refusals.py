"""A body the contract refuses, as the router's `{"error", "message"}`: by the error's type, never its field.

pydantic reports what failed (`missing`, `string_type`, `too_long`, ... or a code a model chose
with PydanticCustomError, e.g. `text_too_long`); this module maps that type to a stable code and
status and words it for a JSON client (arrays and objects, not lists and dicts), in front of it
the field it concerns, or the ticket's position for a batch row. So a new rule in a model needs
no new code here, and every message names what to fix.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from router.contract import BATCH
from router.errors import APIError
from router.fields import PYDANTIC_ERRORS
from router.wording import json_type, quoted

M = TypeVar("M", bound=BaseModel)

TOO_LARGE = frozenset({"text_too_long", "batch_too_large"})  # the client splits or shortens: 413
MISSING = "missing_field"
ROW_LISTS = ((), (BATCH,))  # where a batch's tickets are: the rows of a payload, or /predict's `tickets`

_EXPECTED = {
    "string_type": "a string", "int_type": "an integer", "float_type": "a number", "bool_type": "a boolean",
    "list_type": "an array", "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
}
_QUOTE_INPUT = frozenset({"literal_error", "greater_than_equal", "greater_than", "less_than_equal", "less_than"})
_PHRASES = {
    "missing": "is required",
    "literal_error": "must be {expected}",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} characters",
    "string_pattern_mismatch": "must match {pattern}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} items",
    "greater_than_equal": "must be at least {ge}", "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}", "less_than": "must be less than {lt}",
    "finite_number": "must be a finite number",
    "extra_forbidden": "is not accepted",
}


def validated(model: type[M], body: object, status: int = 422, invalid: str = "invalid_field") -> M:
    """`body` as `model`, or the APIError for its first refusal (`status` and `invalid` as the endpoint's
    convention: 422 `invalid_field` for the router's own endpoints, 400 for MLflow's and V2's)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise refusal(exc, model, status, invalid) from None


def refusal(error: ValidationError, model: type[BaseModel], status: int, invalid: str) -> APIError:
    """The APIError for a refusal; a too-large one goes first, since no fix of the rest makes the body fit.

    pydantic's own error types answer `invalid` (`missing` answers `missing_field`); a model's own
    (PydanticCustomError) types are the code itself.
    """
    errors = error.errors()
    first = next((e for e in errors if e["type"] in TOO_LARGE), errors[0])
    kind = first["type"]
    code = MISSING if kind == "missing" else invalid if kind in PYDANTIC_ERRORS else kind
    return APIError(413 if code in TOO_LARGE else status, code, f"{_subject(first['loc'])} {_predicate(first, model)}")


def _predicate(error: dict[str, Any], model: type[BaseModel]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {json_type(error['input'])}"
    if kind == "extra_forbidden" and len(error["loc"]) == 1:
        return f"{_PHRASES[kind]}; the accepted fields are {list(model.model_fields)}"
    if kind in _PHRASES:
        phrase = _PHRASES[kind].format(**ctx)
        return f"{phrase}, got {quoted(error['input'])}" if kind in _QUOTE_INPUT else phrase
    return error["msg"] if kind not in PYDANTIC_ERRORS else f"is invalid: {error['msg']}"


def _subject(loc: tuple[str | int, ...]) -> str:
    """Who the message is about: a field, a batch's ticket (by position), or the request as a whole."""
    for prefix in ROW_LISTS:
        size = len(prefix)
        if loc[:size] == prefix and len(loc) > size and isinstance(loc[size], int):
            rest = loc[size + 1:]
            return f"ticket {loc[size]}" + (f": field '{_path(rest)}'" if rest else "")
    return f"field '{_path(loc)}'" if loc else "the request"


def _path(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
