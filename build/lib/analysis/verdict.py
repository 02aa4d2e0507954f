"""The decision rule: one small function from the comparison's numbers to what a person should do.

The rule, in order (thresholds in `Thresholds`):

1. A sample-ratio mismatch means the assignment is broken and every number is suspect:
   keep champion, and fix the split before reading the accuracies.
2. Fewer than `min_labelled` feedback-labelled requests in either arm: keep collecting. Small
   samples make the normal approximations unreliable and one noisy hour can decide the test.
3. Difference B - A significant at `alpha` and positive: promote challenger.
4. Significant and negative: keep champion (the challenger is worse).
5. The interval's upper end is below `min_gain`: keep champion (a gain worth a promotion is ruled
   out, even if the test could not separate the two).
6. Otherwise keep collecting, with the labelled requests per arm needed to detect the observed
   difference at `power` (or `min_gain`, when the observed difference is smaller and that size is
   not reached yet).

This is a fixed-horizon test: look at the report when the power statement says the sample is big
enough, not after every batch, or the false-promotion rate grows beyond `alpha`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from analysis.fmt import interval, p_is, pts

PROMOTE = "promote challenger"
KEEP = "keep champion"
COLLECT = "keep collecting"


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.05  # significance of the accuracy comparison (two-sided)
    power: float = 0.8  # for the "n needed" and minimum-detectable-effect statements
    min_labelled: int = 200  # feedback-labelled requests per arm before any decision
    min_gain: float = 0.01  # smallest accuracy gain (1 point) worth a promotion
    srm_alpha: float = 0.001  # sample-ratio mismatch flag

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Evidence:
    """What the rule looks at: labelled requests per arm, the B - A difference and its test, and the
    labelled requests per arm needed to detect the observed difference and `min_gain` (inf: never)."""

    n_a: int
    n_b: int
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    needed_observed: float
    needed_min_gain: float
    srm_flagged: bool = False
    srm_p: float = float("nan")


@dataclass(frozen=True)
class Verdict:
    action: str  # PROMOTE | KEEP | COLLECT
    reason: str
    more_per_arm: int | None = None  # COLLECT only: labelled requests still needed per arm

    @property
    def text(self) -> str:
        if self.action == COLLECT and self.more_per_arm is not None:
            return f"{COLLECT} ({self.more_per_arm} more labelled requests needed per arm)"
        return self.action


def decide(ev: Evidence, th: Thresholds = DEFAULT_THRESHOLDS) -> Verdict:
    """Apply the rule in the module docstring; the reason names the numbers it used."""
    if ev.srm_flagged:
        return Verdict(KEEP, f"sample-ratio mismatch ({p_is(ev.srm_p)}, flagged below {th.srm_alpha}): the traffic "
                             "split does not match the configuration, so the comparison cannot be trusted; "
                             "find why the router assigns differently before deciding")
    smaller = min(ev.n_a, ev.n_b)
    target, effect = _target(ev, th, smaller)
    if smaller < th.min_labelled:
        size = f"; {effect} needs about {int(target)} per arm" if math.isfinite(target) and target > th.min_labelled \
            else ""
        target = max(th.min_labelled, target) if math.isfinite(target) else th.min_labelled
        return Verdict(COLLECT, f"only {ev.n_a} (A) and {ev.n_b} (B) feedback-labelled requests; the rule "
                                f"needs at least {th.min_labelled} per arm before deciding{size}",
                       _more(target, smaller))
    observed = f"B - A = {pts(ev.diff)} (95% CI {interval([ev.ci_low, ev.ci_high], pts)}, {p_is(ev.p_value)})"
    if ev.p_value < th.alpha and ev.diff > 0:
        return Verdict(PROMOTE, f"the challenger is more accurate: {observed}, significant at alpha {th.alpha}, "
                                f"with {ev.n_a} and {ev.n_b} labelled requests")
    if ev.p_value < th.alpha and ev.diff < 0:
        return Verdict(KEEP, f"the challenger is less accurate: {observed}")
    if ev.ci_high < th.min_gain:
        return Verdict(KEEP, f"no meaningful gain: {observed}; the interval rules out a gain of "
                             f"{pts(th.min_gain).lstrip('+')} or more")
    return Verdict(COLLECT, f"not significant yet: {observed}; detecting {effect} with power {th.power:.0%} "
                            f"takes about {_count(target)} labelled requests per arm",
                   _more(target, smaller))


def _target(ev: Evidence, th: Thresholds, have: int) -> tuple[float, str]:
    """Labelled requests per arm to plan for, and what they detect: the minimum gain while the observed
    difference is smaller than it and that size is not reached yet, else the observed difference."""
    if not abs(ev.diff) >= th.min_gain and ev.needed_min_gain > have:
        return ev.needed_min_gain, f"a gain of {pts(th.min_gain).lstrip('+')}"
    return ev.needed_observed, "the observed difference"


def _more(target: float, have: int) -> int | None:
    return None if not math.isfinite(target) else max(1, int(math.ceil(target)) - have)


def _count(target: float) -> str:
    return f"{int(target)}" if math.isfinite(target) else "an unbounded number of"
