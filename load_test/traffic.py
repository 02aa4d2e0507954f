"""What the load test sends: tickets with known truth, their customers, and the feedback agents give.

Pure and seeded: the same arguments plan the same requests, so a run can be repeated and the
feedback share and label-noise rate can be checked without a server. The ticket stream and the
feedback draws use separate random streams, so changing --feedback-rate or --label-noise does not
change which tickets are sent.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice
from pathlib import Path
from typing import Any

import numpy as np

from load_test.simulate.generator import iter_tickets
from ticket_ab.schema import TOPICS, load_tickets

FEEDBACK_SOURCE = "load_test"


@dataclass(frozen=True)
class Planned:
    """One /predict call and, when `feedback_label` or `feedback_priority` is set, the /feedback call that follows
    it (a priority sent alone corrects only the priority)."""

    index: int
    payload: dict[str, str]
    true_topic: str | None
    feedback_label: str | None
    feedback_source: str | None = None  # the integration whose token sends the feedback (None: the default token)
    feedback_priority: str | None = None  # the ticket's true priority, sent with the label or instead of it

    @property
    def feedback(self) -> dict[str, str] | None:
        """The corrections the /feedback body carries (`label`, `priority`), or None when none is planned."""
        fields = {"label": self.feedback_label, "priority": self.feedback_priority}
        return {name: value for name, value in fields.items() if value is not None} or None


class CustomerPool:
    """Customer ids with Zipf-like popularity: a few accounts file a large share of all tickets.

    Used for replayed tickets that carry no customer_id; generated tickets bring their own from the
    same kind of pool. Sticky assignment is per customer, so the skew is what makes an A/B split
    lumpy in practice, and the load test should reproduce it.
    """

    def __init__(self, size: int = 500, seed: int = 0, exponent: float = 1.1) -> None:
        if size < 1:
            raise ValueError(f"the customer pool needs at least one customer, got {size}")
        width = max(5, len(str(size)))
        self.ids = [f"C-{i:0{width}d}" for i in range(1, size + 1)]
        weights = 1.0 / np.arange(1, size + 1) ** exponent
        weights = weights[np.random.default_rng(seed).permutation(size)]
        self._cum = list(accumulate((weights / weights.sum()).tolist()))
        self._rng = random.Random(seed)

    def draw(self) -> str:
        return self._rng.choices(self.ids, cum_weights=self._cum)[0]


def noisy_label(true_topic: str, labels: Sequence[str], noise: float, rng: random.Random) -> str:
    """What an agent files: the true topic, or with probability `noise` another known topic."""
    others = [label for label in labels if label != true_topic]
    if others and rng.random() < noise:
        return rng.choice(others)
    return true_topic


def plan(
    tickets: Iterable[dict[str, Any]],
    *,
    n: int,
    seed: int,
    feedback_rate: float,
    label_noise: float,
    labels: Sequence[str] = TOPICS,
    customers: CustomerPool | None = None,
    sources: Sequence[str] = (),
    priority_rate: float = 0.0,
    priority_only: float = 0.0,
) -> Iterator[Planned]:
    """The first `n` requests: each ticket's payload, and for a `feedback_rate` share its (noisy) label,
    sent in turn by each of `sources` (integrations with their own feedback token) when given.

    A `priority_rate` share of that feedback also carries the ticket's true priority (tickets with one: the
    generator writes it), and a `priority_only` share of those sends the priority alone, as an agent who
    re-triages a ticket without touching its topic. Their draws have a stream of their own, so the default (0:
    no priorities) plans exactly the feedback it did before priorities."""
    rng, triage = random.Random(f"feedback-{seed}"), random.Random(f"priority-{seed}")
    sent = 0
    for index, ticket in enumerate(islice(tickets, n)):
        payload = {"text": str(ticket["text"])}
        for key in ("ticket_id", "customer_id"):
            if _present(ticket.get(key)):
                payload[key] = str(ticket[key])
        if "customer_id" not in payload and customers is not None:
            payload["customer_id"] = customers.draw()
        truth = next((str(ticket[k]) for k in ("true_topic", "topic") if _present(ticket.get(k))), None)
        label = source = priority = None
        if truth is not None and rng.random() < feedback_rate:
            label = noisy_label(truth, labels, label_noise, rng)
            source, sent = (sources[sent % len(sources)] if sources else None), sent + 1
            if priority_rate and _present(ticket.get("priority")) and triage.random() < priority_rate:
                priority = str(ticket["priority"]).strip()
                label = None if triage.random() < priority_only else label
        yield Planned(index, payload, truth, label, source, priority)


def generated(scenario: str, seed: int, customers: int) -> Iterator[dict[str, Any]]:
    """The retrain generator's stream: noise-free truth, since the load test adds agents' noise itself."""
    return iter_tickets(scenario, seed, customers=customers)


def replayed(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Tickets from a CSV/Parquet file (validated by ticket_ab.schema) and the label set for noise."""
    frame = load_tickets(path)
    truth_column = next((c for c in ("true_topic", "topic") if c in frame.columns), None)
    labels = sorted(frame[truth_column].dropna().astype(str).unique()) if truth_column else []
    return frame.to_dict("records"), labels if len(labels) > 1 else list(TOPICS)


def _present(value: object) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return str(value).strip() != ""
