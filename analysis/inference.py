"""Customer-level estimates: the router randomises customers, so customers are the sample.

A customer's tickets are alike (same writers, same topics), so two requests of one customer are
not two independent draws; treating them so makes standard errors too small and p-values too
optimistic, the more so the more a few busy customers dominate. Every estimate here therefore
rests on the assignment unit (the customer; a request without one is its own unit):

- means and differences of per-request outcomes are ratios of sums whose standard error is the
  cluster-robust (sandwich) one of an OLS fit with statsmodels' `cov_type="cluster"`, which is
  the delta-method standard error of a ratio metric, with the usual small-sample correction;
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


def _fit(y: np.ndarray, design: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fit = sm.OLS(y, design).fit(cov_type="cluster", cov_kwds={"groups": units})
    with np.errstate(invalid="ignore"):  # an arm without variation has a (numerically) zero or negative variance
        return np.asarray(fit.params), np.asarray(fit.bse)


def _codes(units: Sequence) -> np.ndarray:
    return np.unique(np.asarray(units, dtype=str), return_inverse=True)[1]


def cluster_mean(y: Sequence[float], units: Sequence) -> Estimate:
    """The request-weighted mean of `y` (a ratio of sums over customers) and its cluster-robust SE."""
    values, codes = np.asarray(y, dtype=float), _codes(units)
    n, k = len(values), len(np.unique(codes))
    if n == 0:
        return Estimate(NAN, NAN, 0, 0)
    if k < 2 or np.all(values == values[0]):
        return Estimate(float(values.mean()), NAN if k < 2 else 0.0, k, n)
    params, bse = _fit(values, np.ones((n, 1)), codes)
    return Estimate(float(params[0]), float(bse[0]), k, n)


def cluster_diff(y: Sequence[float], in_b: Sequence[bool], units: Sequence,
                 covariate: Sequence[float] | None = None) -> Estimate:
    """Mean of `y` in B minus mean in A (each a ratio of sums), with the cluster-robust SE of the
    difference: the OLS slope on the arm indicator with standard errors clustered by customer.

    With a `covariate` measured before assignment could act on it (CUPAC: the champion's confidence
    in the ticket), the slope comes from Lin's (2013) fully interacted regression on the centred
    covariate, y ~ 1 + B + x + B*x: still the difference of request-weighted means in expectation
    under randomisation, whatever the relation between x and y, but without the part of the noise
    x explains, so the interval is narrower (Lindon et al. 2022 show it stays anytime-valid)."""
    values, b, codes = np.asarray(y, dtype=float), np.asarray(in_b, dtype=bool), _codes(units)
    n, k = len(values), len(np.unique(codes))
    if b.all() or not b.any():
        return Estimate(NAN, NAN, k, n)
    diff = float(values[b].mean() - values[~b].mean())
    if k < 3 or np.all(values == values[0]):
        return Estimate(diff, NAN if k < 3 else 0.0, k, n)
    design = [np.ones(n), b.astype(float)]
    if covariate is not None and _varies(covariate):
        x = np.asarray(covariate, dtype=float)
        x = x - x.mean()
        design += [x, b * x]
    params, bse = _fit(values, np.column_stack(design), codes)
    return Estimate(float(params[1]), float(bse[1]), k, n)


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
