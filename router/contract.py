"""The request contract: every body rule, limit and refusal message, written once as pydantic models.

The router validates each body with these models, `GET /openapi.json` publishes their JSON schema
(router.openapi) and a refusal is their error turned into `{"error", "message"}` (router.refusals),
so the three cannot drift apart. The limits that are settings (TICKET_AB_MAX_TEXT_CHARS,
TICKET_AB_MAX_BATCH) are constraints of the models themselves: `contract` builds them for one
app's limits, so the document shows the limit in force and a refusal quotes it (TICKET_AB_MAX_BATCH_CHARS, the
characters of a whole batch, too). Rules that need
the running router (a feedback label the champion knows, bearer tokens) are not body rules and
live with what they need (router.views, router.auth).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from flask import current_app
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, create_model, model_validator
from pydantic_core import PydanticCustomError

from router.fields import MAX_ID_CHARS, Id, Open, one_of, text, worded
from router.mlflow_payload import MlflowPayload
from router.tensors import InferRequest
from ticket_ab.names import MODES
from ticket_ab.settings import RouterSettings, env_names

EXTENSION = "ticket_ab.contract"
BATCH = "tickets"  # the field of a /predict batch
TEXT_SETTING = env_names()["router.max_text_chars"]
BATCH_SETTING = env_names()["router.max_batch"]
CHARS_SETTING = env_names()["router.max_batch_chars"]
DEFAULT_UPDATED_BY = "api"


# A client's own request id (its idempotency key): short and safe to log, grep and put in a URL.
ClientRequestId = Annotated[
    text(pattern=r"^[A-Za-z0-9_.:-]{1,64}$"),
    worded("invalid_field", lambda *_: "must be 1 to 64 characters of A-Z, a-z, 0-9 and _ . : - (or be omitted: "
           "the router then makes one)", "string_pattern_mismatch")]


# The shape the rest of the router reads; `contract` gives the text its rules and the cap in force.
class Ticket(Open):
    """One ticket: `text` is classified; `customer_id` (else `ticket_id`) decides the arm."""

    text: str
    ticket_id: Id | None = Field(None, description=f"the ticket's id, at most {MAX_ID_CHARS} characters")
    customer_id: Id | None = Field(None, description="the customer: the same one always sees the same arm")
    request_id: ClientRequestId | None = Field(None, description="the client's own id for this request (kept on a "
                                               "retry); absent or null: the router makes one")


def _ticket_text(max_chars: int) -> Any:
    """The ticket text: not blank, at most `max_chars` characters (413, quoting the limit and its setting)."""
    return Annotated[
        text(max_length=max_chars, pattern=r"\S"),
        worded("invalid_field", lambda *_: "is empty", "string_pattern_mismatch"),
        worded("text_too_long", lambda value, ctx: f"has {len(value)} characters; the limit is {ctx['max_length']} "
               f"({TEXT_SETTING})", "string_too_long"),
        Field(description=f"the ticket text, at most {max_chars} characters ({TEXT_SETTING})")]


def _tickets(ticket: type[Ticket], max_batch: int, max_chars: int) -> Any:
    """One to `max_batch` tickets: over the cap is 413 before any ticket is read (the client splits the batch);
    then at most `max_chars` characters of text in all (413: one request may not hold a worker for seconds)
    and each client request id once (422: one id, one log row)."""
    return Annotated[
        list[ticket],  # type: ignore[valid-type]
        Field(min_length=1, max_length=max_batch,
              description=f"one to {max_batch} tickets ({BATCH_SETTING}), each as a single /predict body, with at "
              f"most {max_chars} characters of text in all ({CHARS_SETTING}) and no request_id twice"),
        worded("batch_too_large", lambda rows, ctx: f"has {len(rows)} tickets; the limit is {ctx['max_length']} "
               f"({BATCH_SETTING}): send them in several requests", "too_long"),
        worded("empty_batch", lambda *_: "has no tickets; send at least one", "too_short"),
        AfterValidator(lambda rows: _within_budget(rows, max_chars))]


def _within_budget(rows: list[Ticket], max_chars: int) -> list[Ticket]:
    chars = sum(len(row.text) for row in rows)
    if chars > max_chars:
        raise PydanticCustomError("batch_too_large", f"has {chars} characters of ticket text in all; the limit is "
                                  f"{max_chars} ({CHARS_SETTING}): send them in several requests")
    seen: set[str] = set()
    for position, row in enumerate(rows):
        if row.request_id is not None and row.request_id in seen:
            raise PydanticCustomError("duplicate_request_id", f"repeats request_id {row.request_id!r} at ticket "
                                      f"{position}: each ticket of a request needs its own (one id, one log row)")
        seen.add(row.request_id)
    return rows


# `contract` gives the list its cap.
class TicketBatch(Open):
    """`{"tickets": [...]}`: many tickets in one request, each checked as a single one."""

    tickets: list[Ticket]

    @model_validator(mode="before")
    @classmethod
    def _not_both(cls, data: Any) -> Any:
        if isinstance(data, dict) and "text" in data:
            raise PydanticCustomError("invalid_field", "has both 'text' (one ticket) and 'tickets' (a batch); send "
                                      "one of them")
        return data


def _body_kind(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    return "batch" if BATCH in body else "ticket"


ServedRequestId = text(strip_whitespace=True, min_length=1, max_length=MAX_ID_CHARS)
Label = text(strip_whitespace=True, min_length=1)


class Feedback(Open):
    """An agent's true topic and/or true priority for a served request; a `source` in the body is ignored (the
    token decides it). Either may be sent alone: a correction of one keeps an earlier correction of the other."""

    request_id: ServedRequestId = Field(description="the request_id a /predict answered with")
    label: Label | None = Field(None, description="the true topic, one the champion knows (else 422 unknown_label)")
    priority: Label | None = Field(None, description="the true priority, one the champion's priority head knows, "
                                   "or low/medium/high/urgent for a one-head champion (else 422 unknown_priority)")

    @model_validator(mode="after")
    def _corrects_something(self) -> Self:
        if self.label is None and self.priority is None:
            raise PydanticCustomError("missing_field", "needs 'label' and/or 'priority'")
        return self


class ConfigChange(BaseModel):
    """A change of the A/B config; unknown fields are refused so a typo cannot silently do nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ab_split_b: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = Field(
        None, description="share of customers for the challenger")
    mode: Literal[MODES] = Field(None, description="'split' serves B to a share of customers; 'shadow' serves A "  # type: ignore[valid-type]
                                 "to all and scores B alongside")
    updated_by: Id | None = Field(None, description=f"who changes it (default {DEFAULT_UPDATED_BY!r})")
    challenger: Id | None = Field(None, description="the challenger version the change is for (default: the one "
                                  "served now); a later challenger starts from the rollout policy's start")

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if not {"ab_split_b", "mode"} & self.model_fields_set:
            raise PydanticCustomError("missing_field", "needs 'ab_split_b' and/or 'mode'")
        return self

    def changes(self) -> dict[str, Any]:
        """The keyword arguments of ConfigStore.update: the fields sent, and who sent them."""
        sent = {name: getattr(self, name) for name in ("ab_split_b", "mode", "challenger")
                if name in self.model_fields_set}
        return sent | {"updated_by": self.updated_by or DEFAULT_UPDATED_BY}


@dataclass(frozen=True)
class Contract:
    """One app's request models; `create_app` builds it from the app's limits."""

    predict: type[RootModel[Any]]  # one ticket, or a `tickets` batch
    tickets: type[RootModel[Any]]  # the rows of /invocations and /v2 infer, each a ticket
    feedback: type[Feedback] = Feedback
    config: type[ConfigChange] = ConfigChange
    invocations: type[MlflowPayload] = MlflowPayload
    infer: type[InferRequest] = InferRequest


@functools.lru_cache(maxsize=8)
def contract(max_text_chars: int, max_batch: int, max_batch_chars: int) -> Contract:
    """The request models under these limits (cached: every app with the same limits shares them)."""
    ticket = create_model("Ticket", __base__=Ticket, __doc__=Ticket.__doc__, text=_ticket_text(max_text_chars))
    tickets = _tickets(ticket, max_batch, max_batch_chars)
    batch = create_model("TicketBatch", __base__=TicketBatch, __doc__=TicketBatch.__doc__, tickets=tickets)

    class PredictBody(RootModel[one_of(_body_kind, "invalid_json", "must be a JSON object", ticket=ticket,
                                       batch=batch)]):
        """One ticket, or `{"tickets": [...]}`."""

    class Tickets(RootModel[tickets]):
        """The rows of an /invocations or /v2 infer payload, each a ticket."""

    return Contract(predict=PredictBody, tickets=Tickets)


def for_settings(settings: RouterSettings) -> Contract:
    """The contract under the limits of `settings` (TICKET_AB_MAX_TEXT_CHARS, _MAX_BATCH, _MAX_BATCH_CHARS)."""
    return contract(settings.max_text_chars, settings.max_batch, settings.max_batch_chars)


def current() -> Contract:
    """The contract of the app handling the current request (`create_app` puts it there)."""
    return current_app.extensions[EXTENSION]
