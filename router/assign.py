"""Which arm serves a request: a pure function of the key, the configured split and a random draw.

A keyed request lands in a fixed bucket in [0, 1) derived from a well-mixed hash of the key, and
goes to B when its bucket is below the split. So the same customer always sees the same model while
the split is unchanged, and raising the split only ever moves customers from A to B, never back.
"""

from __future__ import annotations

import hashlib
import random

from retrain.contracts.names import A, B

_SCALE = float(2**64)


def bucket(key: str) -> float:
    """Map `key` to [0, 1) uniformly: blake2b mixes sequential ids ("c-1", "c-2", ...) well."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assignment_key(customer_id: str | None, ticket_id: str | None) -> str | None:
    """The customer decides the arm; a ticket id stands in for anonymous customers."""
    return customer_id or ticket_id or None


def assign(key: str | None, split_b: float, draw: float | None = None) -> str:
    """Arm for one request: sticky by `key`, otherwise by `draw` (a fresh uniform number if None)."""
    point = bucket(key) if key else (random.random() if draw is None else draw)
    return B if point < split_b else A
