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
- macro-F1 and p95 latency, which are not means, get a customer-level bootstrap (scipy's
  `bootstrap` resampling customers, sklearn's `f1_score`, numpy's quantile).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy.stats import bootstrap
from sklearn.metrics import f1_score

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


def _fit(y: np.ndarray, design: np.ndarray, units: np.ndarray,
         weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    model = sm.OLS(y, design) if weights is None else sm.WLS(y, design, weights=weights)
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": units})
    with np.errstate(invalid="ignore"):  # an arm without variation has a (numerically) zero or negative variance
        return np.asarray(fit.params), np.asarray(fit.bse)


def _codes(units: Sequence) -> np.ndarray:
    return np.unique(np.asarray(units, dtype=str), return_inverse=True)[1]


def _mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    """The plain mean without weights (bit for bit what it always was), else the weighted one."""
    return float(values.mean()) if weights is None else float(np.average(values, weights=weights))


def capped_weights(units: Sequence, cap: int, earlier: Sequence[int] | None = None) -> np.ndarray:
    """Row weights min(n_i, c_i) / n_i, n_i being the rows of the row's customer and c_i its cap: each
    customer's rows weigh as at most c_i rows together, so a few busy customers cannot carry a mean alone
    (cap 0: all ones). c_i is `cap` plus the customer's `earlier` labelled requests (per row, CUPED's record):
    capping pays because a busy customer's mean says little beyond its own level, and the earlier record
    already pins that level, so the better the covariate knows a customer, the more of its rows count. The
    weights depend on volumes and on what was recorded before assignment, never on the arm, so weighted
    differences stay unbiased for their (declared) estimand under randomisation."""
    codes = _codes(units)
    if not cap:
        return np.ones(len(codes))
    per_row = np.bincount(codes)[codes].astype(float)
    caps = cap + (0.0 if earlier is None else np.asarray(earlier, dtype=float))
    return np.minimum(per_row, caps) / per_row


def cluster_mean(y: Sequence[float], units: Sequence, *, weights: Sequence[float] | None = None) -> Estimate:
    """The request-weighted mean of `y` (a ratio of sums over customers), or the `weights`-weighted one,
    and its cluster-robust SE."""
    values, codes = np.asarray(y, dtype=float), _codes(units)
    w = None if weights is None else np.asarray(weights, dtype=float)
    n, k = len(values), len(np.unique(codes))
    if n == 0:
        return Estimate(NAN, NAN, 0, 0)
    if k < 2 or np.all(values == values[0]):
        return Estimate(_mean(values, w), NAN if k < 2 else 0.0, k, n)
    params, bse = _fit(values, np.ones((n, 1)), codes, w)
    return Estimate(float(params[0]), float(bse[0]), k, n)


def cluster_diff(y: Sequence[float], in_b: Sequence[bool], units: Sequence,
                 covariate: Sequence[float] | np.ndarray | None = None, *, strata: Sequence | None = None,
                 weights: Sequence[float] | None = None) -> Estimate:
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
    cluster across steps. With `weights` (`capped_weights`) every mean is the weighted one, fitted by WLS."""
    values, b, codes = np.asarray(y, dtype=float), np.asarray(in_b, dtype=bool), _codes(units)
    w = None if weights is None else np.asarray(weights, dtype=float)
    periods = np.zeros(len(values), dtype=int) if strata is None else _codes(strata)
    n, k = len(values), len(np.unique(codes))
    diff = NAN if b.all() or not b.any() else _within_strata_diff(values, b, w, periods)
    if math.isnan(diff):
        return Estimate(NAN, NAN, k, n)
    if k < 3 or np.all(values == values[0]):
        return Estimate(diff, NAN if k < 3 else 0.0, k, n)
    design = [np.ones(n), b.astype(float), *((periods == s).astype(float) for s in range(1, periods.max() + 1))]
    if covariate is not None and np.ndim(covariate) == 2:
        columns = [x - _mean(x, w) for x in np.asarray(covariate, dtype=float).T if _varies(x)]
        design += [*columns, *(b * x for x in columns)]
    elif covariate is not None and _varies(covariate):
        x = np.asarray(covariate, dtype=float)
        x = x - _mean(x, w)
        design += [x, b * x]
    params, bse = _fit(values, np.column_stack(design), codes, w)
    return Estimate(float(params[1]), float(bse[1]), k, n)


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


def _varies(covariate: Sequence[float]) -> bool:
    x = np.asarray(covariate, dtype=float)
    return bool(len(x)) and bool(np.isfinite(x).all()) and float(np.ptp(x)) > 0


def proportion_interval(correct: Sequence[bool], units: Sequence, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson interval of an arm's accuracy on its effective sample size n / design effect."""
    est = cluster_mean(np.asarray(correct, dtype=float), units)
    if est.n == 0:
        return NAN, NAN
    deff = est.design_effect if math.isfinite(est.design_effect) else 1.0
    n_eff = est.n / max(1.0, deff)
    return wilson_interval(est.value * n_eff, n_eff, confidence)


class _Clusters:
    """Rows grouped by customer, so a resample of customers becomes a resample of their rows."""

    def __init__(self, units: Sequence) -> None:
        codes = _codes(units)
        self.order = np.argsort(codes, kind="stable")
        self.counts = np.bincount(codes) if len(codes) else np.zeros(0, dtype=int)
        self.starts = np.cumsum(self.counts) - self.counts
        self.ids = np.arange(len(self.counts))

    def take(self, picked: np.ndarray) -> np.ndarray:
        """The row indices of the picked customers, each as often as picked."""
        lengths = self.counts[picked]
        ends = np.cumsum(lengths)
        within = np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lengths, lengths)
        return self.order[np.repeat(self.starts[picked], lengths) + within]


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable[..., float], confidence: float,
               resamples: int, seed: int):
    return bootstrap(data, statistic, n_resamples=resamples, confidence_level=confidence, method="percentile",
                     vectorized=False, random_state=np.random.default_rng(seed))


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """sklearn's macro-F1 over the labels seen in either sequence; nan without data."""
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0)) if len(y_true) else NAN


def macro_f1_interval(y_true: Sequence[str], y_pred: Sequence[str], units: Sequence, confidence: float = 0.95,
                      resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of macro-F1 from a bootstrap that resamples customers (seeded: reproducible)."""
    n = len(y_true)  # integer codes: sklearn scores them several times faster than strings
    codes = np.unique(np.concatenate([np.asarray(y_true, dtype=str), np.asarray(y_pred, dtype=str)]),
                      return_inverse=True)[1]
    truth, pred = codes[:n], codes[n:]
    clusters = _Clusters(units)
    if len(clusters.ids) < 2:
        return NAN, NAN

    def statistic(picked: np.ndarray) -> float:
        rows = clusters.take(picked)
        return macro_f1(truth[rows], pred[rows])

    ci = _bootstrap((clusters.ids,), statistic, confidence, resamples, seed).confidence_interval
    return float(ci.low), float(ci.high)


def quantile_diff(values_a: Sequence[float], units_a: Sequence, values_b: Sequence[float], units_b: Sequence,
                  q: float = 0.95, resamples: int = 200, seed: int = 0) -> Estimate:
    """B's q-quantile minus A's (p95 latency) and its standard error from a bootstrap over customers."""
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    ca, cb = _Clusters(units_a), _Clusters(units_b)
    if not len(a) or not len(b):
        return Estimate(NAN, NAN, len(ca.ids) + len(cb.ids), len(a) + len(b))
    diff = float(np.quantile(b, q) - np.quantile(a, q))
    if len(ca.ids) < 2 or len(cb.ids) < 2:
        return Estimate(diff, NAN, len(ca.ids) + len(cb.ids), len(a) + len(b))

    def statistic(picked_a: np.ndarray, picked_b: np.ndarray) -> float:
        return float(np.quantile(b[cb.take(picked_b)], q) - np.quantile(a[ca.take(picked_a)], q))

    result = _bootstrap((ca.ids, cb.ids), statistic, 0.95, resamples, seed)
    return Estimate(diff, float(result.standard_error), len(ca.ids) + len(cb.ids), len(a) + len(b))
