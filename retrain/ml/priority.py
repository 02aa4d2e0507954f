"""How good a priority head is, counted as the desk pays for its mistakes.

Macro-F1 weighs every priority alike, but the mistakes are not alike: an `urgent` ticket read as `low` waits
in the queue while something burns, a `low` ticket read as `urgent` costs an agent a look. So next to macro-F1
this module counts the urgent tickets read as low (`urgent_as_low`, what the gate keeps from rising), urgent
recall and precision, and a confusion cost from one ordinal matrix (`COST`); and it finds the urgent threshold
(`ticket_ab.twohead.decide_priority`) that buys a target urgent recall from out-of-fold probabilities.
Pure functions: arrays in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

from ticket_ab.schema import PRIORITIES
from ticket_ab.schema import PRIORITY as PRIORITY  # re-exported: the column's name beside its figures
from ticket_ab.twohead import URGENT, decide_priority

LOW = "low"

# The cost of answering the column's priority for a ticket of the row's (order: PRIORITIES, low -> urgent).
# Each step of under-reading costs 2, each step of over-reading 1: urgent read as low costs 6, low read as
# urgent 3; urgent read as medium 4, medium read as urgent 2. A missed urgent ticket waits behind the queue,
# a false alarm only jumps it.
COST: dict[str, tuple[int, ...]] = {
    "low": (0, 1, 2, 3),
    "medium": (2, 0, 1, 2),
    "high": (4, 2, 0, 1),
    "urgent": (6, 4, 2, 0),
}


@dataclass(frozen=True)
class PriorityScores:
    """A priority head's answers against the truth on the same tickets (NaN where a figure has no tickets)."""

    n: int
    macro_f1: float
    urgent_n: int  # tickets whose true priority is urgent
    urgent_as_low_count: int  # ... of them predicted low
    urgent_as_low: float  # ... that share of the urgent tickets
    urgent_recall: float
    urgent_precision: float
    cost: float  # mean COST per ticket

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def priority_scores(truth: np.ndarray, predicted: np.ndarray) -> PriorityScores:
    """Every priority figure of `predicted` against `truth` (labels as strings).

    Macro-F1 averages over the priorities present in `truth`, not over truth and predictions: over their union,
    one stray prediction of a class the tickets lack would add an F1 of 0, and two models answering on the same
    tickets would be averaged over different classes (the gate compares exactly those two figures)."""
    truth, predicted = np.asarray(truth, dtype=str), np.asarray(predicted, dtype=str)
    urgent = truth == URGENT
    urgent_n, said_urgent = int(urgent.sum()), int((predicted == URGENT).sum())
    as_low = int((urgent & (predicted == LOW)).sum())
    return PriorityScores(
        n=len(truth),
        macro_f1=_macro_f1(truth, predicted),
        urgent_n=urgent_n,
        urgent_as_low_count=as_low,
        urgent_as_low=as_low / urgent_n if urgent_n else math.nan,
        urgent_recall=_urgent(recall_score, truth, predicted) if urgent_n else math.nan,
        urgent_precision=_urgent(precision_score, truth, predicted) if said_urgent else math.nan,
        cost=confusion_cost(truth, predicted),
    )


def confusion_cost(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean `COST` per ticket; NaN without tickets. Labels outside PRIORITIES have no cost and are refused."""
    truth, predicted = np.asarray(truth, dtype=str), np.asarray(predicted, dtype=str)
    unknown = sorted((set(truth) | set(predicted)) - set(PRIORITIES))
    if unknown:
        raise ValueError(f"priorities outside {PRIORITIES} have no cost: {unknown[:5]}")
    if not len(truth):
        return math.nan
    counts = confusion_matrix(truth, predicted, labels=list(PRIORITIES))
    return float((counts * np.array([COST[p] for p in PRIORITIES])).sum() / len(truth))


def urgent_threshold_for_recall(proba: np.ndarray, truth: np.ndarray, classes: tuple[str, ...] | np.ndarray,
                                recall: float) -> float | None:
    """The highest urgent threshold at which `decide_priority` reaches `recall` on urgent tickets.

    `proba` are out-of-fold probabilities (n x classes) of tickets whose true priority is `truth`: the
    threshold is read from tickets the head did not learn from, as it will meet new ones. The highest one
    meeting the recall keeps the most precision. None when the likeliest class alone already reaches it
    (no threshold needed). A training set without urgent tickets, or a head without the class, is an error.
    """
    if not 0.0 < recall <= 1.0:
        raise ValueError(f"urgent recall must be in (0, 1], got {recall}")
    classes = [str(c) for c in classes]
    truth = np.asarray(truth, dtype=str)
    urgent = truth == URGENT
    if URGENT not in classes or not urgent.any():
        raise ValueError("an urgent threshold needs the 'urgent' class among the head's classes and its tickets")
    found = decide_priority(proba, classes, None)[urgent] == URGENT
    needed = math.ceil(recall * int(urgent.sum()) - 1e-9) - int(found.sum())
    if needed <= 0:
        return None
    missed = np.sort(proba[urgent, classes.index(URGENT)][~found])[::-1]
    return float(missed[needed - 1])


def _macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    if not len(truth):
        return math.nan
    return float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0))


def _urgent(metric, truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(metric(truth, predicted, labels=[URGENT], average=None, zero_division=0)[0])
