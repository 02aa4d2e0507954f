"""Guardrails: a more accurate challenger is promoted only if it is not worse at serving.

Each guardrail is a non-inferiority check on the customer level: B - A on p95 and p99 latency, error
rate, fallback rate and the accuracy on each topic, with the same kind of interval (always-valid or
fixed-horizon) at the same look as the accuracy comparison. A serving guardrail (latency, errors,
fallbacks: higher is worse) is within its margin (`ABSettings`) when the interval's upper end is at
most the margin; breached when even its lower end is above the margin (B is credibly worse by more
than allowed); unresolved in between, which holds a promotion back until the data settle it.

A topic guardrail (higher is better) asks whether the challenger is credibly worse on one topic by
more than `topic_margin`, an overall gain hiding a collapse on, say, billing tickets: breached when the
upper end of B - A on that topic is below -topic_margin, within when its lower end is at least
-topic_margin. Unlike the serving guardrails it holds nothing back while unresolved: a topic has a
fraction of the labels, and a rare one may take months to be shown within a 15-point margin, so an
unresolved topic would hold every promotion forever. It is reported as "n/a" (the status the verdict
does not wait for) with its interval, and it blocks only once breached, with the same false-alarm
guarantee as the other guardrails. The p99 latency is breach-only for the same reason: one request in
a hundred is too few to show it within its margin in a test's time; p95 is the one that must be.
Intention-to-treat: every request assigned to an arm counts for that arm, whoever answered it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import pandas as pd

from analysis import inference, sequential, traffic
from analysis.arms import counts, outcomes
from analysis.compare import ramp_steps
from analysis.fmt import interval, ms, pts
from analysis.prepare import Prepared
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
          unit=pts, *, higher_is_worse: bool = True) -> Guardrail:
    """Place the interval of B - A (at the accuracy comparison's look, `looks_n` labelled requests)
    against the margin: an upper limit when higher is worse, a lower limit (a negative margin) when not."""
    if math.isnan(est.value) or math.isnan(est.se):
        return Guardrail(name, NOT_APPLICABLE, est.value, math.nan, math.nan, margin,
                         f"{name}: not enough data in both arms to judge")
    half = sequential.multiplier(looks_n, th, seq) * est.se if looks_n else math.inf
    low, high = est.value - half, est.value + half
    worst, best = (high, low) if higher_is_worse else (-low, -high)  # the ends, in the "worse" direction
    limit = margin if higher_is_worse else -margin
    status = OK if worst <= limit else BREACHED if best > limit else UNRESOLVED
    words = {OK: "within", BREACHED: "beyond", UNRESOLVED: "not yet shown within"}[status]
    text = (f"{name}: B - A = {_signed(est.value, unit)} (interval {interval([low, high], unit)}), {words} "
            f"the margin of {unit(margin).lstrip('+')}")
    return Guardrail(name, status, est.value, low, high, margin, text)


def _signed(value: float, unit) -> str:
    return unit(value) if unit is pts else ("+" if value >= 0 else "") + unit(value)


def serving(prepared: Prepared, mode: str, looks_n: int, th: ABSettings, seq: bool,
            measured: dict[str, dict[str, float]] | None = None) -> list[Guardrail]:
    """The serving guardrails of the analysed requests (view `an` of `analysis.traffic`), from per-customer
    counts: p95 and p99 latency, error rate and fallback rate; in shadow mode the customer always got the
    champion's answer, so only the shadow's failures count. `measured`: per arm, the latency quantiles
    `traffic.arm` has already taken (`p95`, `p99`), not taken again."""
    if mode == SHADOW:
        cells = traffic.shadow_failures(prepared)
        failed = inference.cluster_mean(cells["fallbacks"] / cells["n"], cells["unit"], counts=cells["n"])
        return [judge("fallback rate", failed, th.fallback_margin, looks_n, th, seq)]
    cells = traffic.failure_cells(prepared)
    rates = {name: inference.cluster_diff(cells[column] / cells["n"], cells["in_b"], cells["unit"], counts=cells["n"])
             for name, column in (("error rate", "errors"), ("fallback rate", "fallbacks"))}
    p95, p99 = _latency(prepared, (0.95, 0.99), looks_n, th, seq, measured or {})
    return [p95, breach_only(p99), judge("error rate", rates["error rate"], th.error_margin, looks_n, th, seq),
            judge("fallback rate", rates["fallback rate"], th.fallback_margin, looks_n, th, seq)]


def _latency(prepared: Prepared, qs: tuple[float, ...], looks_n: int, th: ABSettings, seq: bool,
             measured: dict[str, dict[str, float]]) -> list[Guardrail]:
    """Per q of `qs`, B's q-quantile latency minus A's, allowed to exceed A's by `latency_margin` of it or by
    `latency_margin_ms`, whichever is larger (a share alone would be a few ms on a fast champion)."""
    arms = {arm: _quantiles(prepared, arm, qs, measured.get(arm)) for arm in ("A", "B")}
    guardrails = []
    for q, (at_a, a), (at_b, b) in zip(qs, arms["A"], arms["B"], strict=True):
        diff = inference.Estimate(at_b - at_a, math.hypot(a.se, b.se), a.units + b.units, a.n + b.n)
        margin = max(th.latency_margin * at_a, th.latency_margin_ms) if not math.isnan(at_a) else th.latency_margin_ms
        guardrails.append(judge(f"p{round(q * 100)} latency", diff, margin, looks_n, th, seq, unit=ms))
    return guardrails


def _quantiles(prepared: Prepared, arm: str, qs: tuple[float, ...],
               measured: dict[str, float] | None) -> list[tuple[float, inference.Estimate]]:
    """An arm's latency at each q of `qs` (the `measured` ones as they are) and its customer-level standard error
    (`inference.quantile_se`), from one scan of the arm's requests."""
    known = [measured.get(f"p{round(q * 100)}") for q in qs] if measured else []
    ats, cells = traffic.latency_at(prepared, arm, list(qs), known if known and None not in known else None)
    n, units = int(cells["n"].sum()), int(len(cells))
    if not n:
        return [(math.nan, inference.Estimate(math.nan, math.nan, 0, 0))] * len(qs)
    levels = partial(traffic.latency_quantiles, prepared, arm)
    return [(at, inference.Estimate(at, inference.quantile_se(cells[f"below_{i}"], cells["n"], cells["unit"], q,
                                                              levels), units, n))
            for i, (q, at) in enumerate(zip(qs, ats, strict=True))]


TOPIC_MIN_CUSTOMERS = 10  # labelled customers per arm before a topic is judged: a clustered SE from fewer (one
# ticket of one customer in B) is degenerate and could "breach" on a single wrong answer


def topic_guardrails(rows: pd.DataFrame, mode: str, looks_n: int, th: ABSettings, seq: bool) -> list[Guardrail]:
    """B - A accuracy on each agent-labelled topic (`rows`: the analysed labelled cells, `traffic.cells`) with
    TOPIC_MIN_CUSTOMERS labelled customers in each arm, against -topic_margin; unresolved becomes "n/a" (see the
    module docstring: only a breach blocks)."""
    labelled = outcomes(rows, mode)
    labelled["label"] = rows["label"]  # in place: a copy of a million cells for one column would double them
    checks = []
    for topic in sorted(labelled["label"].dropna().unique()):  # masks, not groupby: that sorts a copy of every cell
        group = labelled[labelled["label"] == topic]
        arms = [group] if mode == SHADOW else [group[group["in_b"]], group[~group["in_b"]]]
        if min(arm["unit"].nunique() for arm in arms) < TOPIC_MIN_CUSTOMERS:
            continue
        g = judge(f"accuracy on {topic}", _topic_diff(group, mode), -th.topic_margin, looks_n, th, seq,
                  higher_is_worse=False)
        checks.append(breach_only(g))
    return checks


def breach_only(g: Guardrail) -> Guardrail:
    """A guardrail that stops a breach but holds nothing while unresolved (reported as "n/a", which the verdict
    does not wait on): a topic's few labels, or the p99's few tail requests, would hold a promotion for long."""
    if g.status != UNRESOLVED:
        return g
    return replace(g, status=NOT_APPLICABLE, text=f"{g.text} (does not hold a promotion: only a breach blocks)")


def _topic_diff(group: pd.DataFrame, mode: str) -> inference.Estimate:
    """One topic's B - A: the paired per-ticket difference in shadow mode, else the difference of the arms,
    stratified by ramp step when the outcomes carry one (as the overall comparison is)."""
    if mode == SHADOW:
        return inference.cluster_mean(group["right_b"].astype(float) - group["right_a"].astype(float), group["unit"],
                                      counts=counts(group))
    return inference.cluster_diff(group["right"].astype(float), group["in_b"], group["unit"], strata=ramp_steps(group),
                                  counts=counts(group))
