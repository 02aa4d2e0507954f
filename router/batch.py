"""Many tickets in one request: the cap, and each row checked by the same rules as a single ticket.

Every protocol turns its payload into a list of row objects (`{"text": ..., "customer_id": ...}`)
and hands it here, so a batch row is valid exactly when a single `/predict` body would be, and a
bad row's error names its position. The cap (TICKET_AB_MAX_BATCH) bounds the work one request can
ask of a worker; it is checked before any row is read.
"""

from __future__ import annotations

from collections.abc import Sequence

from router import inputs
from router.errors import APIError

CAP_SETTING = "TICKET_AB_MAX_BATCH"


def check_size(count: int, max_batch: int, status: int) -> None:
    """413 above the cap (the client splits the batch), `status` for an empty one."""
    if count > max_batch:
        raise APIError(413, "batch_too_large", f"{count} tickets in one request; the limit is {max_batch} "
                       f"({CAP_SETTING}): send them in several requests")
    if count == 0:
        raise APIError(status, "empty_batch", "the request carries no tickets; send at least one")


def tickets(rows: Sequence[object], max_chars: int, max_batch: int, status: int = 422) -> list[inputs.Ticket]:
    """Validated tickets of `rows`; a bad row answers `status` (413 stays 413) naming the row."""
    check_size(len(rows), max_batch, status)
    out = []
    for position, row in enumerate(rows):
        if not isinstance(row, dict):
            raise APIError(status, "invalid_field",
                           f"ticket {position} must be an object with a 'text' field, got {inputs.json_type(row)}")
        try:
            out.append(inputs.ticket(row, max_chars))
        except APIError as exc:
            raise APIError(413 if exc.status == 413 else status, exc.code,
                           f"ticket {position}: {exc.message}") from None
    return out
