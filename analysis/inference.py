"""Customer-level estimates: the router randomises customers, so customers are the sample.

A customer's tickets are alike (same writers, same topics), so two requests of one customer are
not two independent draws; treating them so makes standard errors too small and p-values too
optimistic, the more so the more a few busy customers dominate. Every estimate here therefore
rests on the assignment unit (the customer; a request without one is its own unit):

- means and differences of per-request outcomes are ratios of sums whose standard error is the
  cluster-robust (sandwich) one of an OLS fit with statsmodels' `cov_type="cluster"`, which is
  the delta-method standard error of a ratio metric, with the usual small-sample correction;
  with row weights (`capped_weights`: a busy customer's requests weigh as at most its cap) the same
  holds for the weighted means, fitted by WLS;
- an arm's accuracy interval is statsmodels' Wilson interval on the effective sample size
  (requests divided by the design effect), so it keeps Wilson's behaviour near 0% and 100%;
- macro-F1, which is not a mean, gets a customer-level bootstrap (scipy's `bootstrap` resampling
  customers, macro-F1 of the resample's summed confusion counts, equal to sklearn's `f1_score`);
- a latency quantile's standard error is the delta method's for clustered data (Deng, Knoblich and
  Lu 2018): the share of requests at or below the quantile is a ratio metric with a cluster-robust
  standard error s, and the quantile's is the spread of the quantiles at q - z s and q + z s over 2z,
  so it needs per-customer counts, not a resample of millions of requests.

The sandwich is computed here from per-customer sums (`_fit`), the same numbers as statsmodels'
`OLS(...).fit(cov_type="cluster")` (a unit test holds them to it) without a design matrix per request
held by statsmodels: millions of labelled requests take a second. Rows may stand for several
identical requests (`counts`: frequency weights), which gives the same estimate and standard error as
the requests one by one. With a covariate that differs between a cell's requests (the champion's confidence,
CUPAC) a cell carries the covariate's mean and its variance within the cell (`within`): every request's design
row is the cell's mean row plus its covariate's deviation times a fixed vector, so the fit's sums and every
customer's score follow exactly from those two numbers: a 10M window's 3.3M labelled requests fit as about 415,000
rows (`analysis.arms.pooled`: one per customer, arm, step and result).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from retrain.ml.stats import wilson_interval

NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    """A mean or a B - A difference with its customer-level standard error."""

    value: float
    se: float
    units: int  # assignment units (customers) it rests on
    n: int  # requests it rests on

    @property
    def design_effect(self) -> float:
        """How much clustering inflates the variance over independent requests (1: not at all)."""
        return NAN if not self.n else self.se**2 * self.n / max(self.value * (1 - self.value), 1e-12)


BOOTSTRAP_BATCH = 16  # resamples drawn at once: 200 of 300,000 customers' indices at once would take 480 MB
FIT_CHUNK = 262_144  # rows per block of the fit: the design is never stacked whole (millions of rows, k columns)


@dataclass(frozen=True)
class Within:
    """A covariate that differs between the requests a row stands for: its variance within each row (`variance`,
    the row's design holding the mean), the design column of the centred covariate (`at`) and of its interaction
    with B (`interaction`), and each row's B (`b`): a request's deviation d moves its design row by d on `at` and
    d b on `interaction`, nothing else."""

    variance: np.ndarray
    at: int
    interaction: int
    b: np.ndarray


def _fit(y: np.ndarray, design: np.ndarray | list[np.ndarray], units: np.ndarray, weights: np.ndarray | None = None,
         nobs: float | None = None, within: Within | None = None) -> tuple[np.ndarray, np.ndarray]:
    """WLS (OLS without `weights`) coefficients and their cluster-robust standard errors, as statsmodels'
    `fit(cov_type="cluster")` gives them: pinv bread, per-cluster score sums, the G/(G-1) (N-1)/(N-K)
    correction with N = `nobs` (the requests the rows stand for; default: the rows). `design` is a matrix or its
    columns; it is used a block of rows at a time, so the fit's memory does not grow with the rows. With `within`
    a row of weight w stands for requests whose design rows are its row plus d_j c (deviations d_j summing to
    zero, their mean square v; c is 1 on the covariate's column and B on its interaction's): they add w v c c' to
    X'WX and take w v c (c'b) from their customer's score, the request-level fit's exact sums."""
    columns = list(design.T) if isinstance(design, np.ndarray) else design
    k, blocks = len(columns), [slice(i, i + FIT_CHUNK) for i in range(0, len(y), FIT_CHUNK)]
    w = np.ones(len(y)) if weights is None else weights
    xtwx, xtwy = np.zeros((k, k)), np.zeros(k)
    for rows in blocks:
        x = np.column_stack([c[rows] for c in columns])
        wx = x * w[rows, None]
        xtwx += x.T @ wx
        xtwy += wx.T @ y[rows]
        if within is not None:
            wv, b = w[rows] * within.variance[rows], within.b[rows]
            i, j = within.at, within.interaction
            xtwx[i, i] += wv.sum()
            xtwx[i, j] += (wv * b).sum()
            xtwx[j, i] += (wv * b).sum()
            xtwx[j, j] += (wv * b * b).sum()
    bread = np.linalg.pinv(xtwx)
    params = bread @ xtwy
    groups_n = int(units.max()) + 1 if len(units) else 0
    scores = np.zeros((groups_n, k))
    for rows in blocks:
        x = np.column_stack([c[rows] for c in columns])
        score = x * (w[rows] * (y[rows] - x @ params))[:, None]
        if within is not None:
            b = within.b[rows]
            moved = w[rows] * within.variance[rows] * (params[within.at] + b * params[within.interaction])
            score[:, within.at] -= moved
            score[:, within.interaction] -= moved * b
        for j in range(k):
            scores[:, j] += np.bincount(units[rows], weights=score[:, j], minlength=groups_n)
    groups = _groups(units)
    n = len(y) if nobs is None else nobs
    correction = groups / (groups - 1) * (n - 1) / (n - k) if groups > 1 and n > k else np.nan
    cov = correction * bread @ (scores.T @ scores) @ bread
    with np.errstate(invalid="ignore"):  # an arm without variation has a (numerically) zero or negative variance
        return params, np.sqrt(np.diag(cov))


def _codes(units: Sequence) -> np.ndarray:
    """Each row's customer as 0..k-1 in sorted order of the customers' names (a bootstrap's cluster order)."""
    if isinstance(units, pd.Series) and isinstance(units.dtype, pd.CategoricalDtype):
        if units.cat.categories.is_monotonic_increasing:  # sorted already (the report's come so): rank the codes
            return pd.factorize(units.cat.codes.to_numpy(), sort=True)[0]
        categories = units.cat.remove_unused_categories()
        order = np.argsort(np.asarray(categories.cat.categories, dtype=str), kind="stable")
        return np.argsort(order)[categories.cat.codes.to_numpy()]
    values = np.asarray(units)
    if np.issubdtype(values.dtype, np.integer):  # ids that are numbers already (hashes): no strings needed
        return pd.factorize(values, sort=True)[0]
    return pd.factorize(values.astype(str), sort=True)[0]


def _groups(codes: np.ndarray) -> int:
    """How many customers the codes (0..k-1, `_codes`) name: counted, not sorted (millions of rows)."""
    return int(np.count_nonzero(np.bincount(codes))) if len(codes) else 0


def _mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    """The plain mean without weights (bit for bit what it always was), else the weighted one."""
    return float(values.mean()) if weights is None else float(np.average(values, weights=weights))


def capped_weights(units: Sequence, cap: int, earlier: Sequence[int] | None = None,
                   counts: Sequence[float] | None = None) -> np.ndarray:
    """Row weights min(n_i, c_i) / n_i, n_i being the rows of the row's customer and c_i its cap: each
    customer's rows weigh as at most c_i rows together, so a few busy customers cannot carry a mean alone
    (cap 0: all ones). c_i is `cap` plus the customer's `earlier` labelled requests (per row, CUPED's record):
    capping pays because a busy customer's mean says little beyond its own level, and the earlier record
    already pins that level, so the better the covariate knows a customer, the more of its rows count. The
    weights depend on volumes and on what was recorded before assignment, never on the arm, so weighted
    differences stay unbiased for their (declared) estimand under randomisation. A row with `counts` c stands for
    c requests of its customer."""
    codes = _codes(units)
    if not cap:
        return np.ones(len(codes))
    per_row = np.bincount(codes, weights=None if counts is None else np.asarray(counts, dtype=float))[codes]
    per_row = per_row.astype(float)
    caps = cap + (0.0 if earlier is None else np.asarray(earlier, dtype=float))
    return np.minimum(per_row, caps) / per_row


def _row_weights(weights: Sequence[float] | None,
                 counts: Sequence[float] | None) -> tuple[np.ndarray | None, int | None]:
    """The fit's weights (row weights times the requests each row stands for) and the requests (None: the
    rows)."""
    if counts is None:
        return (None if weights is None else np.asarray(weights, dtype=float)), None
    n = np.asarray(counts, dtype=float)
    return (n if weights is None else n * np.asarray(weights, dtype=float)), int(n.sum())


def cluster_mean(y: Sequence[float], units: Sequence, *, weights: Sequence[float] | None = None,
                 counts: Sequence[float] | None = None) -> Estimate:
    """The request-weighted mean of `y` (a ratio of sums over customers), or the `weights`-weighted one,
    and its cluster-robust SE; a row with `counts` c stands for c requests whose mean is its `y`."""
    values, codes = np.asarray(y, dtype=float), _codes(units)
    w, requests = _row_weights(weights, counts)
    n, k = (len(values) if requests is None else requests), _groups(codes)
    if n == 0:
        return Estimate(NAN, NAN, 0, 0)
    if k < 2 or np.all(values == values[0]):
        return Estimate(_mean(values, w), NAN if k < 2 else 0.0, k, n)
    params, bse = _fit(values, np.ones((len(values), 1)), codes, w, n)
    return Estimate(float(params[0]), float(bse[0]), k, n)


def cluster_diff(y: Sequence[float], in_b: Sequence[bool], units: Sequence,
                 covariate: Sequence[float] | np.ndarray | None = None, *, strata: Sequence | None = None,
                 weights: Sequence[float] | None = None, counts: Sequence[float] | None = None,
                 within: Sequence[float] | None = None) -> Estimate:
    """Mean of `y` in B minus mean in A (each a ratio of sums), with the cluster-robust SE of the
    difference: the OLS slope on the arm indicator with standard errors clustered by customer.

    With a `covariate` measured before assignment could act on it (CUPAC: the champion's confidence
    in the ticket), the slope comes from Lin's (2013) fully interacted regression on the centred
    covariate, y ~ 1 + B + x + B*x: still the difference of request-weighted means in expectation
    under randomisation, whatever the relation between x and y, but without the part of the noise
    x explains, so the interval is narrower (Lindon et al. 2022 show it stays anytime-valid). A 2-D
    `covariate` (one column per covariate, e.g. the champion's confidence and the customer's earlier
    accuracy, CUPED) enters the same way: every varying column centred, plus its interaction with B.

    With `strata` (the steps of a ramp, each its own split) the slope comes with a fixed effect per
    stratum, so only within-step contrasts count: pooled naively, a later step with more B customers
    and a different base accuracy would pass for a B effect. It weighs each step's difference by its
    information (weight total times p(1 - p) of its B share), which is the effect when the challenger's
    gain is the same in every step (the same two models); a customer moved A -> B by a ramp is one
    cluster across steps. With `weights` (`capped_weights`) every mean is the weighted one, fitted by WLS; a
    row with `counts` c stands for c requests whose mean is its `y`, and whose covariate (the first column of a 2-D
    one) has its mean there and the variance `within` about it (None: the same value on each)."""
    values, b, codes = np.asarray(y, dtype=float), np.asarray(in_b, dtype=bool), _codes(units)
    w, requests = _row_weights(weights, counts)
    periods = np.zeros(len(values), dtype=int) if strata is None else _codes(strata)
    n, k = (len(values) if requests is None else requests), _groups(codes)
    diff = NAN if b.all() or not b.any() else _within_strata_diff(values, b, w, periods)
    if math.isnan(diff):
        return Estimate(NAN, NAN, k, n)
    if k < 3 or np.all(values == values[0]):
        return Estimate(diff, NAN if k < 3 else 0.0, k, n)
    design, spread = _design(b, periods, covariate, w, within)
    params, bse = _fit(values, design, codes, w, n, spread)
    return Estimate(float(params[1]), float(bse[1]), k, n)


def _design(b: np.ndarray, periods: np.ndarray, covariate: Sequence[float] | np.ndarray | None,
            w: np.ndarray | None, within: Sequence[float] | None) -> tuple[list[np.ndarray], Within | None]:
    """The columns of Lin's regression (1, B, a dummy per later stratum, each varying covariate centred and its
    interaction with B) and, when the first covariate varies within rows (`within`), how it does (`Within`)."""
    rows = len(b)
    design = [np.ones(rows), b.astype(float), *((periods == s).astype(float) for s in range(1, periods.max() + 1))]
    if covariate is None:
        return design, None
    spread = None if within is None else np.asarray(within, dtype=float)
    xs = np.asarray(covariate, dtype=float)
    xs = xs.T if xs.ndim == 2 else xs[None, :]
    kept = [i for i, x in enumerate(xs) if _varies(x, spread if i == 0 else None)]
    columns = [xs[i] - _mean(xs[i], w) for i in kept]
    design += [*columns, *(b * x for x in columns)]
    if spread is None or 0 not in kept:
        return design, None
    at = len(design) - 2 * len(columns)
    return design, Within(spread, at, at + len(columns), b.astype(float))


def _within_strata_diff(values: np.ndarray, b: np.ndarray, w: np.ndarray | None, periods: np.ndarray) -> float:
    """The B slope of y ~ B + stratum dummies in closed form (Frisch-Waugh), for the cases too small to
    fit: each stratum's B - A difference of (weighted) means, weighted by W_a W_b / W of its weight
    totals; one stratum gives the plain difference, no stratum with both arms gives nan."""
    weight = np.ones(len(values)) if w is None else w
    diffs, information = [], []
    for s in np.unique(periods):
        rows_b, rows_a = (periods == s) & b, (periods == s) & ~b
        if rows_b.any() and rows_a.any():
            wb, wa = weight[rows_b], weight[rows_a]
            diffs.append(_mean(values[rows_b], None if w is None else wb)
                         - _mean(values[rows_a], None if w is None else wa))
            information.append(wb.sum() * wa.sum() / (wb.sum() + wa.sum()))
    if len(diffs) < 2:
        return float(diffs[0]) if diffs else NAN
    return float(np.average(diffs, weights=information))


def _varies(covariate: Sequence[float], within: np.ndarray | None = None) -> bool:
    """Whether a covariate takes two values at least: between rows, or within one (`within`, its variance there)."""
    x = np.asarray(covariate, dtype=float)
    if not len(x) or not np.isfinite(x).all():
        return False
    return float(np.ptp(x)) > 0 or (within is not None and bool((within > 0).any()))


def proportion_interval(correct: Sequence[bool], units: Sequence, confidence: float = 0.95, *,
                        counts: Sequence[float] | None = None) -> tuple[float, float]:
    """Wilson interval of an arm's accuracy on its effective sample size n / design effect."""
    est = cluster_mean(np.asarray(correct, dtype=float), units, counts=counts)
    if est.n == 0:
        return NAN, NAN
    deff = est.design_effect if math.isfinite(est.design_effect) else 1.0
    n_eff = est.n / max(1.0, deff)
    return wilson_interval(est.value * n_eff, n_eff, confidence)


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable[..., float], confidence: float,
               resamples: int, seed: int):
    return bootstrap(data, statistic, n_resamples=resamples, batch=BOOTSTRAP_BATCH, confidence_level=confidence,
                     method="percentile", vectorized=False, random_state=np.random.default_rng(seed))


def _label_codes(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Both label sequences as codes of one sorted label set, for confusion counts by bincount.
    Categoricals sharing sorted categories (the report's cells) are ranked by their codes: a million labels are
    never turned into Python strings."""
    shared = _shared_codes(y_true, y_pred)
    if shared is not None:
        return shared
    both = pd.concat([pd.Series(np.asarray(y_true, dtype=object)), pd.Series(np.asarray(y_pred, dtype=object))],
                     ignore_index=True).astype(str)
    codes, labels = pd.factorize(both, sort=True)
    return codes[:len(y_true)], codes[len(y_true):], len(labels)


def _shared_codes(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """`_label_codes` of two categoricals with the same sorted categories and no missing value, else None."""
    if not all(isinstance(y, pd.Series) and isinstance(y.dtype, pd.CategoricalDtype) for y in (y_true, y_pred)):
        return None
    categories = y_true.cat.categories
    if not categories.equals(y_pred.cat.categories) or not categories.is_monotonic_increasing:
        return None
    truth, pred = y_true.cat.codes.to_numpy(), y_pred.cat.codes.to_numpy()
    if (truth < 0).any() or (pred < 0).any():
        return None
    seen = (np.bincount(truth, minlength=len(categories)) + np.bincount(pred, minlength=len(categories))) > 0
    rank = np.cumsum(seen) - 1  # each seen category's place among the seen ones
    return rank[truth], rank[pred], int(seen.sum())


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], *, counts: Sequence[float] | None = None) -> float:
    """sklearn's macro-F1 over the labels seen in either sequence (a pair with `counts` c as c requests; a unit test
    holds it to sklearn's `f1_score`), from the confusion counts: sklearn takes half a second on a million; nan
    without data."""
    if not len(y_true):
        return NAN
    truth, pred, k = _label_codes(y_true, y_pred)
    weights = None if counts is None else np.asarray(counts, dtype=float)
    return _f1_of_confusion(np.bincount(truth * k + pred, weights=weights, minlength=k * k).reshape(k, k))


def _f1_of_confusion(confusion: np.ndarray) -> float:
    """Macro-F1 of a confusion matrix (rows truth, columns answers) over the labels it has, as sklearn's."""
    tp = np.diag(confusion)
    truth, answered = confusion.sum(axis=1), confusion.sum(axis=0)
    seen = (truth + answered) > 0
    denominator = truth + answered
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)
    return float(f1[seen].mean()) if seen.any() else NAN


def macro_f1_interval(y_true: Sequence[str], y_pred: Sequence[str], units: Sequence, confidence: float = 0.95,
                      resamples: int = 200, seed: int = 0, *, counts: Sequence[float] | None = None
                      ) -> tuple[float, float]:
    """Percentile interval of macro-F1 from a bootstrap that resamples customers (seeded: reproducible). A
    resample's macro-F1 is that of the picked customers' confusion counts summed, each as often as picked,
    which is sklearn's on their requests: one confusion matrix per customer instead of every request."""
    truth, pred, k = _label_codes(y_true, y_pred)
    customers = _codes(units)
    groups = int(customers.max()) + 1 if len(customers) else 0
    if groups < 2:
        return NAN, NAN
    weights = np.ones(len(customers)) if counts is None else np.asarray(counts, dtype=float)
    cells = pd.DataFrame({"c": customers, "cell": truth * k + pred, "n": weights}).groupby(["c", "cell"])["n"].sum()
    owner, cell = (cells.index.get_level_values(i).to_numpy() for i in (0, 1))
    count = cells.to_numpy()

    def statistic(picked: np.ndarray) -> float:
        weights = np.bincount(picked, minlength=groups)[owner] * count
        return _f1_of_confusion(np.bincount(cell, weights=weights, minlength=k * k).reshape(k, k))

    ci = _bootstrap((np.arange(groups),), statistic, confidence, resamples, seed).confidence_interval
    return float(ci.low), float(ci.high)


def quantile_se(below: Sequence[float], counts: Sequence[float], units: Sequence, q: float,
                quantiles: Callable[[list[float]], list[float]], z: float = 1.96) -> float:
    """The standard error of a q-quantile of clustered requests by the delta method (Deng, Knoblich and Lu 2018):
    the share of requests at or below the quantile (`below` of `counts` per customer) is a ratio metric with
    cluster-robust standard error s, and the quantile's is (Q(q + z s) - Q(q - z s)) / 2z, `quantiles` giving
    Q of the same requests (a density estimate with the sampling noise as its bandwidth)."""
    share = cluster_mean(np.asarray(below, dtype=float) / np.asarray(counts, dtype=float), units, counts=counts)
    if math.isnan(share.se):
        return NAN
    if share.se == 0:
        return 0.0
    low, high = quantiles([q - z * share.se, q + z * share.se])
    return (high - low) / (2 * z)
