"""Synthetic router logs with a known truth: the analysis must find exactly what was put in.

A plain module (not conftest.py) so tests can import it by a name no other test folder uses.

Rows follow `ticket_ab.requestlog.REQUEST_COLUMNS` and `FEEDBACK_COLUMNS` and the router's rules
(sticky assignment by customer, fallback rows answered by the champion, shadow columns filled in
shadow mode), so the analysis reads them the way it reads a real log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from logfiles import append_rows

from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from ticket_ab.schema import TOPICS


@dataclass
class Phase:
    """A stretch of traffic under one configuration."""

    requests: int
    split_b: float = 0.5
    mode: str = "split"
    b_customer_share: float | None = None  # force this share of customers into B (None: the split)
    challenger: bool = True  # False: no challenger loaded, the router answers everything with A
    version_a: str | None = None  # the champion's version in this phase (None: the spec's)


@dataclass
class LogSpec:
    phases: list[Phase] = field(default_factory=lambda: [Phase(4000)])
    acc_a: float = 0.80
    acc_b: float = 0.80
    feedback_rate: float = 0.5
    customers: int = 800
    fallback_rate: float = 0.0
    error_rate: float = 0.0
    seed: int = 0
    start: str = "2026-11-24T09:00:00+00:00"
    step_s: float = 0.5
    version_a: str = "3"
    version_b: str = "4"
    latency_b_ms: float = 16.0  # median latency of the challenger (the champion's is 12 ms)
    customer_spread: float = 0.0  # customers' accuracy differs by this much (logit-scale sd): clustered outcomes
    crossover: int = 0  # this many customers are also served once by the other arm
    # (source, share of the feedback) of each integration sending labels; empty: every label from "agent"
    feedback_sources: tuple[tuple[str, float], ...] = ()
    biased_source: str | None = None  # this source labels B's answers right and A's wrong, whatever the truth


def write_ab_logs(directory: Path, spec: LogSpec) -> Path:
    """Write the request and feedback logs for `spec` under the log root `directory`; returns the directory."""
    rng = np.random.default_rng(spec.seed)
    directory.mkdir(parents=True, exist_ok=True)
    customers = [f"C-{i:05d}" for i in range(1, spec.customers + 1)]
    weights = 1.0 / np.arange(1, spec.customers + 1) ** 0.6  # a few busy customers, many quiet ones
    weights /= weights.sum()
    moment = datetime.fromisoformat(spec.start)
    shift = rng.normal(0.0, spec.customer_spread, spec.customers) if spec.customer_spread else np.zeros(spec.customers)
    requests, feedback = [], []
    index = 0
    for phase in spec.phases:
        share = phase.split_b if phase.b_customer_share is None else phase.b_customer_share
        order = rng.permutation(spec.customers)
        in_b = set(order[: int(round(share * spec.customers))].tolist())
        crossing = set()
        if spec.crossover:  # drawn only when asked, so every other spec keeps its rows
            crossing = set(rng.choice(spec.customers, size=spec.crossover, replace=False).tolist())
        for c in rng.choice(spec.customers, size=phase.requests, p=weights).tolist():
            index += 1
            moment += timedelta(seconds=spec.step_s)
            truth = TOPICS[int(rng.integers(len(TOPICS)))]
            variant = "B" if phase.mode == "split" and phase.challenger and c in in_b else "A"
            if c in crossing and phase.mode == "split" and phase.challenger:
                crossing.discard(c)
                variant = "A" if variant == "B" else "B"
            version_a = phase.version_a or spec.version_a
            answer_a = _answer(truth, _shifted(spec.acc_a, shift[c]), rng)
            answer_b = _answer(truth, _shifted(spec.acc_b, shift[c]), rng)
            row = dict.fromkeys(REQUEST_COLUMNS, "")
            row.update(timestamp=moment.isoformat(), request_id=f"r{index:06d}", ticket_id=f"T-{index:06d}",
                       customer_id=customers[c], variant=variant, split_b=f"{phase.split_b}", mode=phase.mode,
                       confidence=f"{rng.uniform(0.3, 1):.3f}", text=f"ticket {index} about {truth}")
            row["latency_ms"] = f"{rng.lognormal(np.log(12 if variant == 'A' else spec.latency_b_ms), 0.35):.2f}"
            if variant == "B" and rng.random() < spec.fallback_rate:
                row.update(model_alias="champion", model_version=version_a, topic=answer_a, fallback="timeout")
            elif variant == "B":
                row.update(model_alias="challenger", model_version=spec.version_b, topic=answer_b)
            else:
                row.update(model_alias="champion", model_version=version_a, topic=answer_a)
            if phase.mode == "shadow" and phase.challenger:
                row.update(shadow_version=spec.version_b, shadow_topic=answer_b, shadow_confidence="0.7")
            if rng.random() < spec.error_rate:
                row.update(topic="", confidence="")
            requests.append(row)
            if rng.random() < spec.feedback_rate:
                source, label = _labeller(spec, row, truth, rng)
                feedback.append({"timestamp": (moment + timedelta(seconds=30)).isoformat(),
                                 "request_id": row["request_id"], "label": label, "source": source})
    append_rows(directory, REQUEST_COLUMNS, requests)
    feedback.sort(key=lambda r: r["timestamp"])
    append_rows(directory, FEEDBACK_COLUMNS, feedback)
    return directory


def _labeller(spec: LogSpec, row: dict[str, str], truth: str, rng: np.random.Generator) -> tuple[str, str]:
    """Which source labels this request, and its label: the truth, unless the source is the biased one
    (then B's answer, or anything but A's). Drawn only when sources are given, so other specs keep their rows."""
    if not spec.feedback_sources:
        return "agent", truth
    names = [name for name, _ in spec.feedback_sources]
    shares = np.array([share for _, share in spec.feedback_sources], dtype=float)
    source = names[int(rng.choice(len(names), p=shares / shares.sum()))]
    if source != spec.biased_source or not row["topic"]:
        return source, truth
    if row["variant"] == "B":
        return source, row["topic"]
    return source, _answer(row["topic"], 0.0, rng)


def _shifted(accuracy: float, shift: float) -> float:
    """A customer's accuracy: the arm's, moved on the logit scale by the customer's own difficulty."""
    if shift == 0 or accuracy in (0.0, 1.0):
        return accuracy
    return float(1 / (1 + np.exp(-(np.log(accuracy / (1 - accuracy)) + shift))))


def _answer(truth: str, accuracy: float, rng: np.random.Generator) -> str:
    if rng.random() < accuracy:
        return truth
    others = [t for t in TOPICS if t != truth]
    return others[int(rng.integers(len(others)))]
