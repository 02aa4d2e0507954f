"""CUPAC: the champion's confidence in each analysed ticket, the covariate that narrows the A/B interval.

Most of the noise in an accuracy difference is which tickets each arm happened to get: a ticket
that is hard for the champion is usually hard for the challenger too. The champion's top
probability measures that hardness, and it is a fixed function of the ticket's text (the champion
was trained before the test began), so it is untouched by the arm the ticket was assigned to:
adjusting on it cannot bias the comparison, only remove noise (DoorDash's CUPAC; the adjustment
itself is `analysis.inference.cluster_diff`). The router can log it at serve time
(`TICKET_AB_LOG_CHAMPION_CONFIDENCE`: on arm A it is the answer's own confidence, on arm B the champion
scores the ticket too); what it did not log is scored offline here (analysis.py loads the champion
from the registry, `confidence` scores) on the logged (masked) text the model saw, up to a cap, as a
window of millions of unlogged tickets would take longer to score than the rest of the report.

CUPED (Deng et al. 2013): each customer's earlier accuracy, the other covariate. The same customers were
served by the champion before the experiment started, and agents labelled some of those answers; that
record was written before assignment could act on it, so it is a valid regression covariate too (Lin
2013), and it removes the spread between customers (easy and hard customers), which dominates the noise
on a heavy-tailed customer base. A customer's earlier mean is shrunk towards the pooled earlier mean
(`customer_prior`; how far, `prior_strength`, is estimated from the earlier period unless
`ABSettings.prior_strength` fixes it), so a customer with two earlier labels is not taken at its word; a
customer without any gets the pooled mean. The strength is estimated from the earlier period only, before
assignment, so it cannot differ by arm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from router.predictor import score_many
from ticket_ab.names import SPLIT

Scorer = Callable[[str, Sequence[str]], np.ndarray]  # (champion version, texts) -> confidence per text
COLUMN = "champion_confidence"  # a labelled cell's mean champion confidence (one request's, scored or logged)
VARIANCE = "champion_confidence_var"  # its variance among the cell's requests (0: one request, or all alike)
PRIOR = "prior"  # outcome column: the customer's earlier accuracy, shrunk (CUPED)
PRIOR_N = "prior_n"  # outcome column: the customer's earlier labelled requests


class CovariateError(RuntimeError):
    """The champion could not be loaded or scored; the comparison runs unadjusted and says why."""


def confidence(pipeline: object, texts: Sequence[str]) -> np.ndarray:
    """The model's top class probability for each text (its confidence in its own answer); none for no text
    (`attach` asks for none to load the champion before reading any text)."""
    if not len(texts):
        return np.zeros(0)
    return np.asarray(score_many(pipeline, texts), dtype=float).max(axis=1)


def attach(rows: pd.DataFrame, mode: str, champion: str, scorer: Scorer | None,
           texts: Callable[[list], Sequence[str]], max_scored: int) -> tuple[pd.DataFrame, str | None]:
    """The labelled cells (`rid`, the request id, names each unlogged one for `texts`) with the champion's
    confidence on every one (a cell's mean, and its variance `VARIANCE`, as `analysis.traffic.cells` gives them),
    or unchanged with a note saying why the comparison is unadjusted (shadow mode needs no adjustment: both models
    answer every ticket). What the router logged at serve time (`COLUMN`, `TICKET_AB_LOG_CHAMPION_CONFIDENCE`) is
    taken as it is; only the rest is scored. The champion is loaded before any text is read, and more than
    `max_scored` texts are not scored at all: at about 0.35 ms a text, a window of millions would take longer
    than the rest of the report."""
    labelled = rows["label"].notna()
    if scorer is None or mode != SPLIT or not labelled.any():
        return _without(rows), None
    logged = rows[COLUMN] if COLUMN in rows else pd.Series(np.nan, index=rows.index)
    missing = labelled & logged.isna()
    if not missing.any():
        return rows, None
    spread, rows = _spread(rows), _without(rows)
    if not champion:
        return rows, "no CUPAC adjustment: the log does not say which champion version served this period"
    tickets = int(rows.loc[missing, "count"].sum()) if "count" in rows else int(missing.sum())
    if tickets > max_scored or "rid" not in rows:
        return rows, (f"no CUPAC adjustment: {tickets:,} labelled tickets without a logged champion confidence "
                      f"exceed TICKET_AB_TEST_CUPAC_MAX_SCORED ({max_scored:,}) to score; the interval is the "
                      "unadjusted one (TICKET_AB_LOG_CHAMPION_CONFIDENCE makes the router log it)")
    try:
        scorer(champion, [])
        scores = scorer(champion, list(texts(rows.loc[missing, "rid"].tolist())))
    except CovariateError as exc:
        return rows, f"no CUPAC adjustment (the interval is the unadjusted one): {exc}"
    return rows.assign(**{COLUMN: logged.where(~missing, pd.Series(scores, index=rows.index[missing])),
                          VARIANCE: spread.where(~missing, 0.0)}), None


def scored(rows: pd.DataFrame) -> pd.Series:
    """The covariate of the cells `attach` scored (by `rid`; empty when none was): the leave-one-source-out checks
    reuse them rather than score the same tickets again."""
    if COLUMN not in rows or "rid" not in rows:
        return pd.Series(dtype=float)
    picked = rows.loc[rows["rid"].notna(), ["rid", COLUMN]]
    return pd.Series(picked[COLUMN].to_numpy(), index=picked["rid"].to_numpy())


def _spread(rows: pd.DataFrame) -> pd.Series:
    """Each cell's variance of the covariate among its requests (0 where not given: one value a cell)."""
    return rows[VARIANCE] if VARIANCE in rows else pd.Series(0.0, index=rows.index)


def _without(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows without a partial covariate (an adjustment needs it on every labelled row)."""
    partial = [c for c in (COLUMN, VARIANCE) if c in rows]
    return rows.drop(columns=partial) if partial else rows


def customer_prior(units: Sequence, prior_units: Sequence, prior_right: Sequence[bool],
                   strength: float | None = None) -> np.ndarray:
    """For each of `units`, its customer's earlier accuracy shrunk towards the pooled earlier mean pbar:
    (right_i + strength * pbar) / (n_i + strength), so a customer's own earlier mean counts as much as
    `strength` labels of the pooled one (None: `prior_strength`, estimated from these earlier labels); a
    customer without earlier labels gets pbar (all nan without any)."""
    right = np.asarray(prior_right, dtype=float)
    if not len(right):
        return np.full(len(units), np.nan)
    strength = prior_strength(prior_units, right) if strength is None else strength
    earlier = pd.DataFrame({"unit": np.asarray(prior_units, dtype=str), "right": right}).groupby("unit")["right"]
    pbar, keys = float(right.mean()), pd.Index(np.asarray(units, dtype=str))
    if not np.isfinite(strength):
        return np.full(len(keys), pbar)
    hits, n = earlier.sum().reindex(keys, fill_value=0.0), earlier.count().reindex(keys, fill_value=0)
    return ((hits + strength * pbar) / (n + strength)).to_numpy(dtype=float)


def prior_strength(prior_units: Sequence, prior_right: Sequence[bool]) -> float:
    """How many labels of the pooled mean a customer's own earlier mean is worth: the within-customer binomial
    noise over the spread of accuracy between customers, p(1 - p) / tau^2 - 1 = 1 / rho - 1, with the intraclass
    correlation rho estimated by the method of moments of the beta-binomial (Kleinman 1973, unequal customer
    sizes): S = sum_i n_i (p_i - pbar)^2 has expectation pbar (1 - pbar) (k - 1 + rho (N - sum_i n_i^2 / N)).
    The shrinkage then makes E[p | covariate] the covariate for large and small customers alike, which the one
    regression slope of the adjustment needs; a fixed strength over- or under-shrinks one of them. inf: no spread
    is seen (every customer gets the pooled mean, so the covariate drops out)."""
    right = pd.Series(np.asarray(prior_right, dtype=float)).groupby(np.asarray(prior_units, dtype=str))
    n, hits = right.count().to_numpy(dtype=float), right.sum().to_numpy(dtype=float)
    total, k = n.sum(), len(n)
    pbar = hits.sum() / total
    spread = total - (n**2).sum() / total
    if k < 2 or not 0 < pbar < 1 or spread <= 0:
        return math.inf
    rho = ((n * (hits / n - pbar) ** 2).sum() / (pbar * (1 - pbar)) - (k - 1)) / spread
    return 1 / rho - 1 if 0 < rho < 1 else (0.0 if rho >= 1 else math.inf)


def with_prior(outcomes: pd.DataFrame, before: pd.DataFrame, mode: str, strength: float | None) -> pd.DataFrame:
    """The split-mode outcome rows with each customer's earlier accuracy (`PRIOR`) and earlier labelled requests
    (`PRIOR_N`) from `before`, the champion's labelled answers before the experiment's first request (`unit`,
    `right`; `analysis.traffic.earlier`), when there are any; unchanged otherwise, and in shadow mode, where both
    models answer every ticket and the comparison is paired already.

    Only periods in which no request was assigned to B count as before: there the champion served every
    customer, so whether a customer has an earlier record cannot depend on any assignment. A period with B rows
    (an earlier experiment, or this one's first requests whose challenger only fell back, so the log cannot tell
    its start) would give earlier labels to A's customers only, and the covariate would differ by arm."""
    before = before if mode == SPLIT and len(outcomes) else None
    if before is None or before.empty:
        return outcomes
    counts = before["unit"].astype(str).value_counts()
    return outcomes.assign(**{PRIOR: customer_prior(outcomes["unit"], before["unit"], before["right"], strength),
                              PRIOR_N: outcomes["unit"].astype(str).map(counts).fillna(0).astype(int).to_numpy()})
