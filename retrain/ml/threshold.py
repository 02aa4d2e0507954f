"""The pseudo-labeller's confidence threshold: chosen with a guarantee, then verified on untouched gold.

Chosen: the lowest threshold of a fixed grid whose precision reaches the target (0.95) with 95%
confidence for the whole family of thresholds tried (fixed-sequence testing with exact
Clopper-Pearson bounds: the lowest of many thresholds that pass is otherwise the one whose luck was
best). Verified: measured once on the agents' raw labels, which no model shaped; only a threshold
that gold proves is used (cleaned labels are partly a model's answers, so they flatter a model).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from statsmodels.stats.proportion import proportion_confint

from ticket_ab.schema import TEXT, TOPIC
from ticket_ab.settings import RelabelSettings

# The thresholds tried, fixed before any data and tested from the top down (fixed-sequence testing).
THRESHOLDS = tuple(round(1 - i / 100, 2) for i in range(1, 71))  # 0.99, 0.98, ..., 0.30
ALPHA = 0.05  # error rate of the precision claim: the chosen threshold and the verification


@dataclass
class Calibration:
    threshold: float | None  # None: no threshold reaches the target with enough support
    precision: float | None  # observed on the choosing split above the threshold
    lower: float | None  # its one-sided 95% lower bound there
    support: int
    reason: str
    verified: bool = False  # the untouched gold proves the target at this threshold
    verified_precision: float | None = None  # precision on the untouched gold above the threshold
    verified_interval: tuple[float, float] | None = None  # its two-sided 95% Clopper-Pearson interval
    verified_support: int = 0


def precision_lower(hits, n, alpha: float = ALPHA) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of hits/n: exact, so never optimistic at the
    small counts above a high threshold (statsmodels' `beta` interval at twice alpha, lower end)."""
    return np.asarray(proportion_confint(hits, n, alpha=2 * alpha, method="beta")[0])


def calibrate_threshold(confidence: np.ndarray, correct: np.ndarray, *, target: float = 0.95, min_support: int = 30,
                        thresholds: tuple[float, ...] = THRESHOLDS, alpha: float = ALPHA) -> Calibration:
    """The lowest threshold of a fixed grid whose precision is >= target, with the family of all
    thresholds tried held to one error rate `alpha`.

    Lowest, because every ticket above it is one agents need not label. Taking the lowest of many
    thresholds whose bound passes is a selection effect (the one whose luck was best); fixed-sequence
    testing removes it without Bonferroni's cost: grid thresholds are tested from the highest down,
    each at level alpha, stopping at the first that fails, and the family-wise error stays <= alpha
    because no threshold is reached before every one above it has passed. Thresholds with fewer than
    `min_support` tickets above them are not tested (that depends on the confidences alone, not on
    which answers are right, so the order stays fixed given the data's texts), nor those too thin to
    pass even when all are right (at 0.95 and alpha 0.05: fewer than 59), which would stop the
    sequence before it starts. Precision is over the whole set above a threshold, the set
    pseudo-labels would come from.
    """
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    grid = np.asarray(sorted(thresholds, reverse=True))
    support = (confidence[None, :] >= grid[:, None]).sum(axis=1)
    hits = ((confidence[None, :] >= grid[:, None]) & correct[None, :]).sum(axis=1)
    provable = int(np.ceil(np.log(alpha) / np.log(target))) if 0 < target < 1 else 1  # alpha ** (1/n) >= target
    tested = support >= max(min_support, provable)
    if not tested.any():
        return Calibration(None, None, None, int(support.max(initial=0)), f"{support.max(initial=0)} tickets above "
                           f"the lowest threshold tried < {max(min_support, provable)} needed to choose one")
    lower = np.full(len(grid), np.nan)
    lower[tested] = precision_lower(hits[tested], support[tested], alpha)
    passed = np.flatnonzero(tested)
    failed = passed[lower[passed] < target]
    passed = passed[passed < failed[0]] if len(failed) else passed
    if not len(passed):
        return Calibration(None, None, None, 0, f"no threshold has precision >= {target:.2f} with "
                           f"{1 - alpha:.0%} confidence (the first tried, {grid[failed[0]]:.2f}: {hits[failed[0]]}/"
                           f"{support[failed[0]]} right, lower bound {lower[failed[0]]:.3f})")
    i = passed[-1]
    return Calibration(float(grid[i]), float(hits[i] / support[i]), float(lower[i]), int(support[i]),
                       f"confidence >= {grid[i]:.2f}: precision {hits[i] / support[i]:.3f} ({1 - alpha:.0%} lower "
                       f"bound {lower[i]:.3f}, fixed-sequence over {len(grid)} thresholds) on {support[i]} tickets")


def calibrate_labeller(labeller: Pipeline, holdout: pd.DataFrame, config: RelabelSettings) -> Calibration:
    """The pseudo-labeller's confidence threshold, calibrated on the gold holdout."""
    probs = labeller.predict_proba(holdout[[TEXT]])
    predicted = labeller.classes_[probs.argmax(axis=1)]
    return calibrate_threshold(probs.max(axis=1), predicted == holdout[TOPIC].astype(str).to_numpy(),
                               target=config.pseudo_precision, min_support=config.pseudo_min_support)


def verify_threshold(labeller: Pipeline, chosen: Calibration, untouched: pd.DataFrame,
                     config: RelabelSettings) -> Calibration:
    """Measure the chosen threshold's precision once on gold it was not chosen on; verified only
    when that gold proves the target.

    The choosing split's labels were cleaned, and a fixed label is a model's answer: it agrees with
    the pseudo-labeller more than the truth does (in a window of real tickets, the cleaned labels
    above 0.7 agreed with it 104 of 104 times, the true labels 96 times), so the bound chosen there
    is optimistic. The untouched gold is the agents' raw labels, which no model shaped: agreement
    with them is at most the true precision as long as agents' wrong clicks do not favour the
    labeller's wrong topics. Verified iff its one-sided Clopper-Pearson lower bound (at ALPHA) is
    >= target: one threshold, one test, on data that chose nothing. Merely not rejecting the target
    there let thresholds of true precision 0.93 through on real tickets (bench/RESULTS.md). No
    allowance for agents' own errors: every estimate of their rate from the data (cleanlab's too)
    also counts the labeller's confident mistakes as theirs, so it would pass exactly the thresholds
    that are too low. Too few untouched tickets above the threshold (< pseudo_min_support) verify
    nothing.
    """
    if chosen.threshold is None or untouched.empty:
        return chosen
    probs = labeller.predict_proba(untouched[[TEXT]])
    above = probs.max(axis=1) >= chosen.threshold
    right = labeller.classes_[probs.argmax(axis=1)] == untouched[TOPIC].astype(str).to_numpy()
    hits, n = int(right[above].sum()), int(above.sum())
    if n < config.pseudo_min_support:
        return replace(chosen, verified_support=n, reason=chosen.reason + f"; not verified: {n} untouched tickets "
                       f"above it < {config.pseudo_min_support}")
    low, high = (float(b) for b in proportion_confint(hits, n, alpha=ALPHA, method="beta"))
    lower = float(precision_lower(hits, n))
    verified = lower >= config.pseudo_precision
    verdict = "proves" if verified else "does not prove (nothing pseudo-labelled)"
    return replace(chosen, verified=verified, verified_precision=hits / n, verified_interval=(low, high),
                   verified_support=n, reason=chosen.reason + f"; checked on {n} untouched tickets: agreement with "
                   f"agents {hits}/{n} = {hits / n:.3f} ({1 - ALPHA:.0%} lower bound {lower:.3f}, two-sided CI "
                   f"{low:.3f}-{high:.3f}), which {verdict} precision >= {config.pseudo_precision:.2f}")


def calibration_stats(calibration: Calibration) -> dict[str, Any]:
    return {"pseudo_threshold": calibration.threshold, "pseudo_precision_chosen": calibration.precision,
            "pseudo_precision_lower": calibration.lower, "pseudo_verified": calibration.verified,
            "pseudo_precision": calibration.verified_precision,
            "pseudo_precision_interval": calibration.verified_interval,
            "pseudo_verified_support": calibration.verified_support, "calibration": calibration.reason}
