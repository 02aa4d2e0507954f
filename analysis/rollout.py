"""The experiment policy's decisions: from what the experiment DAG saw to at most one action.

Pure: the DAG (through `analysis.autopilot`) and the lifecycle bench feed it the same facts, so the
bench measures the code that acts. The facts are the experiment's state (`Experiment`, read from the
registry and the router's config) and the look at its data (`Look`, the A/B analysis of the whole
experiment, its ramp steps pooled as strata). One look gives one action, checked in this order:

1. A decision already journalled on the challenger (promote or stop) but not finished: finish it,
   so a retry after a crash ends where a first success would have.
2. A sample-ratio mismatch or a breached guardrail: stop (the comparison, or the challenger, is broken).
3. The verdict "keep champion" (the interval rules out the minimum gain): stop.
4. Past the maximum duration without a promotion: stop, keeping the champion (inconclusive).
5. A step younger than its minimum time: hold.
6. The verdict "promote challenger" with no single feedback source deciding it: promote at the last
   step; at an earlier one, ramp (a promotion serves everyone, so the serving guardrails are first
   seen at the largest step, as canary rollouts do).
7. A step with its labelled customers per arm, whose accuracy interval shows the challenger at most
   `harm_margin` worse, and a next step: ramp. Requiring non-inferiority before a ramp is what keeps
   a harmful challenger at the first step: its interval shows that only with probability alpha.
8. Otherwise hold.

A champion promoted less than `watch_hours` ago is watched: rolled back when its live accuracy is
conclusively below its predecessor's (the interval's upper end below 0), else held (an unfinished
rollback journalled on it is finished first). The watch goes on when a new challenger arrives within
the period (drift does not wait), and a rollback it calls for comes before the challenger's decision.
Each action's mode (`auto`, `ask`, `off`) says whether the DAG may act, must ask, or only reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from analysis.fmt import interval, pts, split_share
from analysis.verdict import GUARDRAIL, KEEP
from analysis.verdict import PROMOTE as PROMOTE_VERDICT
from ticket_ab.names import SHADOW
from ticket_ab.settings import RolloutSettings

HOLD, RAMP, PROMOTE, STOP, ROLLBACK = "hold", "ramp", "promote", "stop", "rollback"
ACTIONS = (HOLD, RAMP, PROMOTE, STOP, ROLLBACK)
AUTO, ASK, OFF = "auto", "ask", "off"


@dataclass(frozen=True)
class Experiment:
    """What is true now: the aliases, the split in effect and since when, and what was journalled."""

    now: datetime
    champion: str | None
    challenger: str | None
    split: float = 0.0
    mode: str = "split"
    started: datetime | None = None  # when the challenger was registered: its experiment's start
    step_since: datetime | None = None  # when the split in effect took effect
    journalled: str | None = None  # an unfinished decision recorded on the challenger (promote | stop)
    promoted_at: datetime | None = None  # when the champion took over (the watch period runs from here)
    previous: str | None = None
    champion_journalled: str | None = None  # an unfinished decision recorded on the champion (rollback)


@dataclass(frozen=True)
class Look:
    """The figures of one analysis the rule reads (B - A accuracy, customer-level, always valid)."""

    verdict: str  # analysis.verdict's action
    reason: str
    diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    labelled_customers: dict[str, int] = field(default_factory=dict)  # per arm, in the current step
    labelled: int = 0  # labelled requests the comparison rests on
    srm_flagged: bool = False
    breached: tuple[str, ...] = ()  # guardrails beyond their margin, by name
    deciding_sources: tuple[str, ...] = ()  # feedback sources the verdict does not hold without


@dataclass(frozen=True)
class Watch:
    """The new champion's live accuracy against its predecessor's (new - old, always-valid interval)."""

    diff: float
    ci_low: float
    ci_high: float
    labelled: int


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    mode: str = AUTO  # how the policy lets this action be taken
    target_split: float | None = None  # RAMP: the next step
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def acts(self) -> bool:
        """Whether the DAG changes something by itself."""
        return self.action != HOLD and self.mode == AUTO


def decide(exp: Experiment, look: Look | None, policy: RolloutSettings) -> Decision:
    """The one action the policy takes now on the running experiment (see the module docstring)."""
    if exp.challenger is None:
        return Decision(HOLD, "no challenger: no experiment is running")
    if exp.journalled in (PROMOTE, STOP):  # already decided (and approved, if asked): only finishing is left
        return Decision(exp.journalled, f"finishing the {exp.journalled} decided earlier", AUTO, figures=_figures(look))
    if look is not None and look.srm_flagged:
        return _decision(STOP, "sample-ratio mismatch: the customers per arm do not match the split", policy, look)
    if look is not None and (look.breached or look.verdict == GUARDRAIL):
        return _decision(STOP, "guardrail breached: " + (", ".join(look.breached) or look.reason), policy, look)
    if look is not None and look.verdict == KEEP:
        return _decision(STOP, look.reason, policy, look)
    age = _hours(exp.now, exp.started)
    if age >= policy.max_hours:
        return _decision(STOP, f"no decision after {age:.1f} h (the maximum is {policy.max_hours:g} h): keeping the "
                               "champion", policy, look)
    if _hours(exp.now, exp.step_since or exp.started) * 60 < policy.min_step_minutes:
        return Decision(HOLD, f"the step at {_step(exp)} is younger than {policy.min_step_minutes:g} min",
                        figures=_figures(look))
    if look is None:
        return Decision(HOLD, "no analysable data yet")
    if look.verdict == PROMOTE_VERDICT:
        if look.deciding_sources:
            return Decision(HOLD, "the gain does not hold without feedback source "
                                  f"{', '.join(look.deciding_sources)}: not promoted", figures=_figures(look))
        following = next_step(exp, policy)
        if following is not None:
            return _decision(RAMP, f"the gain is established, so on to the next step before a promotion: "
                                   f"{look.reason}", policy, look, target=following)
        return _decision(PROMOTE, look.reason, policy, look)
    return _ramp_or_hold(exp, look, policy)


def _ramp_or_hold(exp: Experiment, look: Look, policy: RolloutSettings) -> Decision:
    following = next_step(exp, policy)
    if following is None:
        return Decision(HOLD, f"at the last step ({_step(exp)}): collecting until the test decides",
                        figures=_figures(look))
    fewest = min((look.labelled_customers.get(arm, 0) for arm in ("A", "B")), default=0)
    if fewest < policy.min_customers:
        return Decision(HOLD, f"{fewest} labelled customers in the smaller arm of this step; a ramp needs "
                              f"{policy.min_customers}", figures=_figures(look))
    if not look.ci_low >= -policy.harm_margin:
        return Decision(HOLD, f"not yet shown at most {pts(policy.harm_margin).lstrip('+')} worse (interval "
                              f"{interval([look.ci_low, look.ci_high], pts)}): no ramp", figures=_figures(look))
    reason = (f"shown at most {pts(policy.harm_margin).lstrip('+')} worse (interval "
              f"{interval([look.ci_low, look.ci_high], pts)}) with {fewest}+ labelled customers per arm")
    return _decision(RAMP, reason, policy, look, target=following)


def watching(exp: Experiment, policy: RolloutSettings) -> bool:
    """Whether the champion is watched now: promoted over a predecessor less than `watch_hours` ago, or with
    an unfinished rollback journalled on it."""
    if exp.promoted_at is None or exp.previous is None:
        return False
    return exp.champion_journalled == ROLLBACK or _hours(exp.now, exp.promoted_at) < policy.watch_hours


def watch(exp: Experiment, seen: Watch | None, policy: RolloutSettings) -> Decision:
    """Within the watch period after a promotion: roll back when the new champion is conclusively worse."""
    if exp.promoted_at is None or exp.previous is None:
        return Decision(HOLD, "no promoted champion to watch")
    if exp.champion_journalled == ROLLBACK:
        return Decision(ROLLBACK, "finishing the rollback decided earlier", AUTO)
    if not watching(exp, policy):
        age = _hours(exp.now, exp.promoted_at)
        return Decision(HOLD, f"the watch of v{exp.champion} ended ({age:.1f} h after its promotion)")
    if seen is None or math.isnan(seen.ci_high):
        return Decision(HOLD, f"watching v{exp.champion}: not enough labelled requests yet")
    figures = {"diff": seen.diff, "ci_low": seen.ci_low, "ci_high": seen.ci_high, "labelled": seen.labelled}
    compared = f"v{exp.champion} - v{exp.previous} = {pts(seen.diff)} ({interval([seen.ci_low, seen.ci_high], pts)})"
    if seen.ci_high < 0:
        return Decision(ROLLBACK, f"live accuracy conclusively below its predecessor's: {compared}",
                        getattr(policy, ROLLBACK), figures=figures)
    return Decision(HOLD, f"watching v{exp.champion}: {compared}", figures=figures)


def next_step(exp: Experiment, policy: RolloutSettings) -> float | None:
    """The first ramp step above the split in effect (the first step from shadow mode), or None at the top."""
    steps = policy.ramp_steps
    if exp.mode == SHADOW:
        return steps[0]
    return next((s for s in steps if s > exp.split + 1e-9), None)


def look_from_summary(summary: dict[str, Any]) -> Look:
    """The figures `analysis.experiment.analyse` (plus `analysis.sources`) reported, as the rule reads them."""
    comparison, verdict = summary["comparison"], summary["verdict"]
    sources = summary.get("label_sources") or {}
    return Look(
        verdict=verdict["action"], reason=verdict["reason"], diff=comparison["diff"],
        ci_low=comparison["ci_low"], ci_high=comparison["ci_high"],
        labelled_customers=dict(summary.get("step", {}).get("labelled_customers", {})),
        labelled=int(comparison["n_a"] + comparison["n_b"]), srm_flagged=bool(summary["srm"]["flagged"]),
        breached=tuple(g["name"] for g in summary["guardrails"] if g["status"] == "breached"),
        deciding_sources=tuple(sources.get("deciding") or ()))


def _decision(action: str, reason: str, policy: RolloutSettings, look: Look | None,
              target: float | None = None) -> Decision:
    return Decision(action, reason, getattr(policy, action), target_split=target, figures=_figures(look))


def _figures(look: Look | None) -> dict[str, Any]:
    if look is None:
        return {}
    return {"verdict": look.verdict, "diff": look.diff, "ci_low": look.ci_low, "ci_high": look.ci_high,
            "labelled": look.labelled, "labelled_customers": dict(look.labelled_customers)}


def _hours(now: datetime, since: datetime | None) -> float:
    return 0.0 if since is None else max(timedelta(0), now - since) / timedelta(hours=1)


def _step(exp: Experiment) -> str:
    return "shadow" if exp.mode == SHADOW else split_share(exp.split)
