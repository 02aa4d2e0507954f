"""Which arm serves a request: a pure function of the experiment, the key, the split and a random draw.

A keyed request lands in a bucket in [0, 1) derived from a well-mixed hash of the experiment id and
the key, and goes to B when its bucket is below the split. Within one experiment the same customer
therefore sees the same model on every worker of every replica (they all derive the same experiment
id from the registry, see `router.config`), with no shared state.

Salting with the experiment id reshuffles customers whenever a new experiment starts (a new split
or mode, or another model behind an alias), so B is not always the same customers. It also means
a raised split does NOT only move customers from A to B: a new split is a new experiment, and
about 2*s*(1-s) of the customers change arm at split s. Only within one experiment is the rule
monotone (a higher split over the same salted buckets only adds customers to B).
"""

from __future__ import annotations

import hashlib
import random

from ticket_ab.names import A, B

_SCALE = float(2**64)


def bucket(key: str) -> float:
    """Map `key` to [0, 1) uniformly: blake2b mixes sequential ids ("c-1", "c-2", ...) well."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assignment_key(customer_id: str | None, ticket_id: str | None) -> str | None:
    """The customer decides the arm; a ticket id stands in for anonymous customers."""
    return customer_id or ticket_id or None


def assign(key: str | None, split_b: float, experiment_id: str, draw: float | None = None) -> str:
    """Arm for one request: sticky by `key` within `experiment_id`, otherwise by `draw` (fresh if None)."""
    point = bucket(f"{experiment_id}:{key}") if key else (random.random() if draw is None else draw)
    return B if point < split_b else A
