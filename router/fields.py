"""The building blocks of the request models: JSON strings, ids, tagged unions, and refusals worded by the model.

Each block keeps pydantic doing the checking, so a constraint written here is both enforced and
published in the OpenAPI document; what a block adds is only what pydantic lacks for this API:
lone surrogates in strings (JSON escapes allow them and the router serves them), union errors
without pydantic's member tags in their location, and refusals whose code and message the model
itself chooses (router.refusals turns them into the router's `{"error", "message"}`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    StringConstraints,
    Tag,
    ValidationError,
    WrapValidator,
)
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ErrorType, ValidatorFunctionWrapHandler

MAX_ID_CHARS = 200  # ticket, customer and request ids; longer values are not ids
_SURROGATE = re.compile("[\ud800-\udfff]")
PYDANTIC_ERRORS = frozenset(get_args(ErrorType))  # every other error type is a code a model chose
_STAND_IN = "\ufffd"  # one code point for one: lengths and patterns judge the text as sent

Describe = Callable[[Any, dict[str, Any]], str]


class Open(BaseModel):
    """A request object: strict JSON types, and fields beyond the documented ones are allowed and ignored
    (clients send metadata; MLflow's and V2's payloads carry optional extras)."""

    model_config = ConfigDict(extra="allow", strict=True)


def _keep_surrogates(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a stand-in without lone surrogates (pydantic refuses them) and keep the text as sent."""
    if not isinstance(value, str) or not _SURROGATE.search(value):
        return handler(value)
    stand_in = _SURROGATE.sub(_STAND_IN, value)
    checked = handler(stand_in)
    start = stand_in.index(checked)  # stripping only drops whitespace at the ends
    return value[start:start + len(checked)]


def text(**constraints: Any) -> Any:
    """A JSON string with pydantic's string `constraints` (min/max_length, pattern, strip_whitespace)."""
    return Annotated[str, StringConstraints(**constraints), WrapValidator(_keep_surrogates)]


def worded(code: str, describe: Describe, *error_types: str) -> WrapValidator:
    """Refusals of `error_types` on this value (not its items) become `code`, with the model's own message.

    `describe(value, ctx)` gets the refused value and the constraint's context (e.g. `max_length`),
    so the message quotes the limit from the constraint itself. It is a predicate ("has 21
    characters; ..."): router.refusals puts the field or row in front.
    """

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["loc"] or first["type"] not in error_types:
                raise
            raise PydanticCustomError(code, describe(value, first.get("ctx", {}))) from None

    return WrapValidator(wrap)


def _rebuilt(error: dict[str, Any], loc: tuple[str | int, ...]) -> dict[str, Any]:
    """A line error at `loc`: pydantic's own types keep their context, custom ones their message."""
    if error["type"] not in PYDANTIC_ERRORS:
        return {"type": PydanticCustomError(error["type"], error["msg"]), "loc": loc, "input": error["input"]}
    return {"type": error["type"], "loc": loc, "input": error["input"],
            **({"ctx": error["ctx"]} if "ctx" in error else {})}


def _untagged(tags: frozenset[str]) -> WrapValidator:
    """Drop the union member's tag from error locations, so a refusal names the client's field."""

    def wrap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            errors = [_rebuilt(e, e["loc"][1:] if e["loc"] and e["loc"][0] in tags else e["loc"])
                      for e in exc.errors()]
            raise ValidationError.from_exception_data(exc.title, errors) from None

    return WrapValidator(wrap)


def one_of(pick: Callable[[Any], str | None], code: str, message: str, **members: Any) -> Any:
    """A union that `pick` resolves by tag (a member name); None refuses the value with `code` and `message`.

    Published as the members' `oneOf`; errors name the field as sent, without the member's tag.
    """
    union = Union[tuple(Annotated[member, Tag(tag)] for tag, member in members.items())]  # noqa: UP007
    return Annotated[union, Discriminator(pick, custom_error_type=code, custom_error_message=message),
                     _untagged(frozenset(members))]


def _json_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "string"
    return "integer" if isinstance(value, int) and not isinstance(value, bool) else None


# Ids arrive as strings or integers (CRM exports) and are kept as stripped strings.
Id = Annotated[one_of(_json_kind, "invalid_field", "must be a string or an integer",
                      string=text(strip_whitespace=True, min_length=1, max_length=MAX_ID_CHARS), integer=int),
               AfterValidator(str)]
