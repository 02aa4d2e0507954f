"""Guardrails: a more accurate challenger is promoted only if it is not worse at serving.

Each guardrail is a non-inferiority check on the customer level: B - A on p95 latency, error rate
and fallback rate, with the same kind of interval (always-valid or fixed-horizon) at the same look
as the accuracy comparison. Within its margin (`ABSettings`) when the interval's upper end is at
most the margin; breached when even its lower end is above the margin (B is credibly worse by more
than allowed); unresolved in between, which holds a promotion back until the data settle it.
Intention-to-treat: every request assigned to an arm counts for that arm, whoever answered it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from analysis import inference, sequential
from analysis.fmt import interval, ms, pts
from ticket_ab.names import SHADOW
from ticket_ab.settings import ABSettings

OK, UNRESOLVED, BREACHED, NOT_APPLICABLE = "within margin", "unresolved", "breached", "n/a"


@dataclass(frozen=True)
class Guardrail:
    name: str
    status: str  # OK | UNRESOLVED | BREACHED | NOT_APPLICABLE
    diff: float  # B - A (ms for latency, a fraction for rates)
    ci_low: float
    ci_high: float
    margin: float
    text: str  # one line for the report and the verdict's reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(name: str, est: inference.Estimate, margin: float, looks_n: int, th: ABSettings, seq: bool,
          unit=pts) -> Guardrail:
    """Place the interval of B - A (at the accuracy comparison's look, `looks_n` labelled requests)
    against the margin."""
    if math.isnan(est.value) or math.isnan(est.se):
        return Guardrail(name, NOT_APPLICABLE, est.value, math.nan, math.nan, margin,
                         f"{name}: not enough data in both arms to judge")
    half = sequential.multiplier(looks_n, th, seq) * est.se if looks_n else math.inf
    low, high = est.value - half, est.value + half
    status = OK if high <= margin else BREACHED if low > margin else UNRESOLVED
    words = {OK: "within", BREACHED: "beyond", UNRESOLVED: "not yet shown within"}[status]
    text = (f"{name}: B - A = {_signed(est.value, unit)} (interval {interval([low, high], unit)}), {words} "
            f"the margin of {unit(margin).lstrip('+')}")
    return Guardrail(name, status, est.value, low, high, margin, text)


def _signed(value: float, unit) -> str:
    return unit(value) if unit is pts else ("+" if value >= 0 else "") + unit(value)


def check(rows: pd.DataFrame, mode: str, looks_n: int, th: ABSettings, seq: bool) -> list[Guardrail]:
    """Every guardrail of the analysed requests (`unit`, `variant`, `topic`, `fallback`, `latency_ms`)."""
    fallback = (rows["fallback"] != "").astype(float)
    if mode == SHADOW:  # the customer always got the champion's answer: only the shadow's failures count
        failed = inference.cluster_mean(fallback, rows["unit"])
        return [judge("fallback rate", failed, th.fallback_margin, looks_n, th, seq)]
    assigned = rows[rows["variant"].isin(["A", "B"])]
    in_b = assigned["variant"] == "B"
    errors = inference.cluster_diff((assigned["topic"] == "").astype(float), in_b, assigned["unit"])
    fallbacks = inference.cluster_diff(fallback[assigned.index], in_b, assigned["unit"])
    timed = assigned[assigned["latency_ms"].notna()]
    a, b = timed[timed["variant"] == "A"], timed[timed["variant"] == "B"]
    latency = inference.quantile_diff(a["latency_ms"], a["unit"], b["latency_ms"], b["unit"], 0.95,
                                      resamples=th.resamples)
    p95_a = float(a["latency_ms"].quantile(0.95)) if len(a) else math.nan
    latency_margin = max(th.latency_margin * p95_a, th.latency_margin_ms) if len(a) else th.latency_margin_ms
    return [judge("p95 latency", latency, latency_margin, looks_n, th, seq, unit=ms),
            judge("error rate", errors, th.error_margin, looks_n, th, seq),
            judge("fallback rate", fallbacks, th.fallback_margin, looks_n, th, seq)]
