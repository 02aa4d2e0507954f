"""The decision rule: one small function from the comparison's numbers to what a person should do.

Every interval is customer-level (the router randomises customers, see `analysis.inference`) and,
by default, always valid: a confidence sequence that may be looked at after every batch without
raising the false-promotion rate above alpha (`analysis.sequential`). With --fixed-horizon they
are classic intervals, valid for one look at a sample size fixed in advance. The rule, in order
(thresholds in `ABSettings`, environment TICKET_AB_TEST_*):

1. A sample-ratio mismatch (customers per arm vs the configured split, p < srm_alpha) means the
   assignment is broken and every number is suspect: keep champion, and fix the split first.
2. Fewer than `min_labelled` feedback-labelled requests in either arm: keep collecting.
3. A guardrail breached (B's p95 latency, error rate or fallback rate credibly worse than A's by
   more than its margin): guardrail breached, keep champion, with the guardrail named.
4. The accuracy interval's upper end is below `min_gain`: keep champion (B is worse, or a gain
   worth a promotion is ruled out).
5. The interval's lower end is at least `min_gain`, and every guardrail is shown within its
   margin: promote challenger. A significant but smaller gain is not enough.
6. Otherwise keep collecting, with the labelled requests the test still needs.

Intention-to-treat: a request assigned to B counts for B even when the champion answered it
(a fallback), so a challenger that fails on hard tickets cannot look better by dropping them.
Customers seen in both arms (crossover) are excluded from every number and counted in the notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from analysis.fmt import interval, num, p_is, pts
from analysis.guardrails import BREACHED, OK, Guardrail
from ticket_ab.settings import ABSettings

PROMOTE = "promote challenger"
KEEP = "keep champion"
COLLECT = "keep collecting"
GUARDRAIL = "guardrail breached"


@dataclass(frozen=True)
class Evidence:
    """What the rule looks at: labelled requests per arm, the customer-level interval of B - A
    accuracy, the labelled requests (in all) the test still needs, SRM and the guardrails."""

    n_a: int
    n_b: int
    diff: float
    ci_low: float
    ci_high: float
    needed_more: float = math.nan  # labelled requests in all still needed (inf: never at this difference)
    srm_flagged: bool = False
    srm_p: float = math.nan
    guardrails: list[Guardrail] = field(default_factory=list)
    sequential: bool = True


@dataclass(frozen=True)
class Verdict:
    action: str  # PROMOTE | KEEP | GUARDRAIL | COLLECT
    reason: str
    more_per_arm: int | None = None  # COLLECT only: labelled requests still needed per arm

    @property
    def text(self) -> str:
        if self.action == COLLECT and self.more_per_arm is not None:
            return f"{COLLECT} (about {self.more_per_arm} more labelled requests needed per arm)"
        return self.action


def decide(ev: Evidence, th: ABSettings) -> Verdict:
    """Apply the rule in the module docstring; the reason names the numbers it used."""
    if ev.srm_flagged:
        return Verdict(KEEP, f"sample-ratio mismatch ({p_is(ev.srm_p)}, flagged below {th.srm_alpha}): the "
                             "customers per arm do not match the configured split, so the comparison cannot be "
                             "trusted; find why the router assigns differently before deciding")
    smaller = min(ev.n_a, ev.n_b)
    if smaller < th.min_labelled:
        more = max(th.min_labelled - smaller, _per_arm(ev.needed_more) or 0)
        return Verdict(COLLECT, f"only {ev.n_a} (A) and {ev.n_b} (B) feedback-labelled requests; the rule needs "
                                f"at least {th.min_labelled} per arm before deciding", more)
    breached = [g for g in ev.guardrails if g.status == BREACHED]
    if breached:
        return Verdict(GUARDRAIL, "keep champion: " + "; ".join(g.text for g in breached))
    kind = "always-valid" if ev.sequential else "fixed-horizon"
    gain = pts(th.min_gain).lstrip("+")
    observed = f"B - A = {pts(ev.diff)} ({kind} {1 - 2 * th.alpha:.0%} customer-level interval " \
               f"{interval([ev.ci_low, ev.ci_high], pts)})"
    if ev.ci_high < th.min_gain:
        why = "the challenger is less accurate" if ev.ci_high < 0 else f"no gain of {gain} or more"
        return Verdict(KEEP, f"{why}: {observed}; the interval rules out a gain of {gain} or more")
    if ev.ci_low >= th.min_gain:
        pending = [g for g in ev.guardrails if g.status not in (OK, "n/a")]
        if not pending:
            return Verdict(PROMOTE, f"the challenger is more accurate by at least {gain}: {observed}, with "
                                    f"{ev.n_a} and {ev.n_b} labelled requests; guardrails within their margins")
        return Verdict(COLLECT, f"the accuracy gain is established ({observed}) but a guardrail is not yet "
                                "shown within its margin: " + "; ".join(g.text for g in pending), None)
    needs = (f"; if the observed difference holds, about {num(ev.needed_more)} more labelled requests decide it"
             if math.isfinite(ev.needed_more) else "")
    return Verdict(COLLECT, f"not decided yet: {observed} still contains a gain of {gain}{needs}",
                   _per_arm(ev.needed_more))


def _per_arm(total: float) -> int | None:
    return None if not math.isfinite(total) else max(1, int(math.ceil(total / 2)))
