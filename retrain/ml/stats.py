"""The project's proportion statistics: pseudo-label calibration, drift and the A/B report use them.

The question is always a binary outcome (was the answer right?). Every formula comes from
statsmodels or scipy; these wrappers only add the conventions the callers rely on: a difference is
B - A (challenger minus champion); intervals are two-sided at `confidence`; a quantity the data
cannot define is `nan`, not an exception, because an early experiment legitimately has empty arms
and its report must still be written. They treat observations as independent: the A/B verdict,
whose requests are clustered by customer, uses the customer-level estimators of `analysis.inference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st
from statsmodels.stats import contingency_tables
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

NAN = float("nan")
MCNEMAR_EXACT_BELOW = 25  # discordant pairs; below this the chi-square approximation is poor


def _z(confidence: float) -> float:
    """The normal quantile of a two-sided interval at `confidence`."""
    return float(st.norm.ppf(0.5 + confidence / 2))


# --- one proportion: the Wilson score interval -------------------------------------------------


def wilson_bounds(hits, n, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper Wilson bounds of hits/n at normal quantile `z` (scalars or arrays).

    Wilson, unlike the Wald interval, stays inside [0, 1] and keeps its coverage near 0% and 100%
    and at the small counts of an early experiment or a thin confidence bin.
    """
    low, high = proportion_confint(np.asarray(hits, dtype=float), np.asarray(n, dtype=float),
                                   alpha=2 * float(st.norm.sf(z)), method="wilson")
    return np.asarray(low), np.asarray(high)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided Wilson interval of one count, `nan` without data (an arm nobody labelled yet)."""
    if n <= 0:
        return NAN, NAN
    low, high = wilson_bounds(successes, n, _z(confidence))
    return max(0.0, float(low)), min(1.0, float(high))


# --- two independent proportions ---------------------------------------------------------------


@dataclass(frozen=True)
class ProportionTest:
    """Two independent proportions: the difference B - A, its interval, and the z-test."""

    diff: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float


def two_proportion_test(k_a: int, n_a: int, k_b: int, n_b: int, confidence: float = 0.95) -> ProportionTest:
    """Pooled two-sided z-test of p_A = p_B, with the unpooled (Wald) interval of p_B - p_A.

    The test pools because under H0 both arms share one rate; the interval does not, because it
    describes the difference as observed. This is the pair every A/B tool reports.
    """
    if n_a <= 0 or n_b <= 0:
        return ProportionTest(NAN, NAN, NAN, NAN, NAN)
    diff = k_b / n_b - k_a / n_a
    low, high = confint_proportions_2indep(k_b, n_b, k_a, n_a, method="wald", compare="diff",
                                           alpha=1 - confidence)
    if k_a + k_b in (0, n_a + n_b):  # both arms all right or all wrong: no evidence of any difference
        return ProportionTest(diff, float(low), float(high), 0.0, 1.0)
    z, p = proportions_ztest([k_b, k_a], [n_b, n_a])
    return ProportionTest(diff, float(low), float(high), float(z), float(p))


# --- assignment: sample-ratio mismatch ---------------------------------------------------------


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio mismatch: do the arm counts fit the configured split?"""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float
    flagged: bool


def srm_test(observed: Sequence[int], expected: Sequence[float], alpha: float = 0.001) -> SRMResult:
    """Chi-square goodness of fit of `observed` counts to `expected` (shares or counts, rescaled).

    Flag at p < 0.001 (GrowthBook, Statsig and Eppo do the same): the test runs on every look at
    large n, so a stricter alpha keeps false alarms rare while a broken assignment still shows.
    """
    obs = np.asarray(observed, dtype=float)
    exp = np.asarray(expected, dtype=float)
    total = obs.sum()
    if total <= 0 or exp.sum() <= 0 or np.any(exp <= 0):
        return SRMResult(tuple(int(o) for o in obs), tuple(float(e) for e in exp), NAN, NAN, False)
    exp = exp / exp.sum() * total
    chi2, p = st.chisquare(obs, exp)
    return SRMResult(tuple(int(o) for o in obs), tuple(float(e) for e in exp), float(chi2), float(p), bool(p < alpha))


# --- paired proportions: both models on the same tickets (shadow mode) ---------------------------


@dataclass(frozen=True)
class McNemarResult:
    """Paired comparison on the same tickets; only the discordant pairs carry information."""

    only_a: int  # champion right, challenger wrong
    only_b: int  # challenger right, champion wrong
    statistic: float
    p_value: float
    method: str


def mcnemar(only_a: int, only_b: int, exact_below: int = MCNEMAR_EXACT_BELOW) -> McNemarResult:
    """McNemar's test: exact binomial on few discordant pairs, chi-square with continuity otherwise."""
    exact = only_a + only_b < exact_below
    result = contingency_tables.mcnemar([[0, only_a], [only_b, 0]], exact=exact, correction=True)
    method = "exact binomial" if exact else "chi-square with continuity correction"
    return McNemarResult(only_a, only_b, float(result.statistic), float(result.pvalue), method)
