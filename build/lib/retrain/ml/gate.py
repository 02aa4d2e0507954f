"""The quality gate: a candidate only becomes `challenger` if it is not worse than the champion.

Both are scored on the same held-out slice of the *current* data, so the comparison is about the
traffic the router will see next, not about either model's own training set.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str


def quality_gate(candidate_f1: float, champion_f1: float | None, margin: float) -> GateResult:
    """Pass when candidate macro-F1 >= champion macro-F1 - margin (always, with no champion)."""
    if champion_f1 is None:
        return GateResult(True, f"no champion to beat; candidate macro-F1 {candidate_f1:.4f}")
    bar = champion_f1 - margin
    verdict = ">=" if candidate_f1 >= bar else "<"
    reason = (
        f"candidate macro-F1 {candidate_f1:.4f} {verdict} champion {champion_f1:.4f} - margin {margin:.4f}"
        f" = {bar:.4f}"
    )
    return GateResult(candidate_f1 >= bar, reason)
