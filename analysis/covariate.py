"""CUPAC: the champion's confidence in each analysed ticket, the covariate that narrows the A/B interval.

Most of the noise in an accuracy difference is which tickets each arm happened to get: a ticket
that is hard for the champion is usually hard for the challenger too. The champion's top
probability measures that hardness, and it is a fixed function of the ticket's text (the champion
was trained before the test began), so it is untouched by the arm the ticket was assigned to:
adjusting on it cannot bias the comparison, only remove noise (DoorDash's CUPAC; the adjustment
itself is `analysis.inference.cluster_diff`). It is scored offline (analysis.py loads the champion
from the registry, `confidence` scores) on the logged (masked) text the model saw, not in the
router, where it would double the cost of every arm-B request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from router.predictor import score_many
from ticket_ab.names import SPLIT

Scorer = Callable[[str, Sequence[str]], np.ndarray]  # (champion version, texts) -> confidence per text
COLUMN = "champion_confidence"


class CovariateError(RuntimeError):
    """The champion could not be loaded or scored; the comparison runs unadjusted and says why."""


def confidence(pipeline: object, texts: Sequence[str]) -> np.ndarray:
    """The model's top class probability for each text (its confidence in its own answer)."""
    return np.asarray(score_many(pipeline, texts), dtype=float).max(axis=1)


def attach(rows: pd.DataFrame, mode: str, champion: str, scorer: Scorer | None) -> tuple[pd.DataFrame, str | None]:
    """The rows with the champion's confidence on every labelled ticket, or unchanged with a note saying
    why the comparison is unadjusted (shadow mode needs no adjustment: both models answer every ticket)."""
    labelled = rows["label"].notna()
    if scorer is None or mode != SPLIT or not labelled.any():
        return rows, None
    if not champion:
        return rows, "no CUPAC adjustment: the log does not say which champion version served this period"
    try:
        scores = scorer(champion, rows.loc[labelled, "text"].tolist())
    except CovariateError as exc:
        return rows, f"no CUPAC adjustment (the interval is the unadjusted one): {exc}"
    return rows.assign(**{COLUMN: pd.Series(scores, index=rows.index[labelled])}), None
