"""The project's statistics, in one module: pseudo-label calibration, drift and the A/B report use it.

The question is always a binary outcome (was the answer right?), so these are proportion
statistics. Where statsmodels or scipy has the formula, the function calls it and only adds the
conventions the callers rely on: a difference is B - A (challenger minus champion); intervals are
two-sided at `confidence`; a quantity the data cannot define is `nan` (or `inf` for "never"), not
an exception, because an early experiment legitimately has empty arms and its report must still be
written. The few formulas no library has (paired power, paired interval, a vectorised bootstrap
of macro-F1) are written here, each with its reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as st
from statsmodels.stats import contingency_tables
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

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


def wilson_lower(hits, n, z: float) -> np.ndarray:
    """The lower bound alone: "at least this share, with the stated confidence"."""
    return wilson_bounds(hits, n, z)[0]


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


def sample_size_per_arm(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Labelled requests per arm for a two-sided z-test to detect p_a vs p_b (inf when they are equal)."""
    if any(math.isnan(v) for v in (p_a, p_b)):
        return NAN
    if p_a == p_b:
        return math.inf
    return float(math.ceil(_continuous_size(p_a, p_b, alpha, power)))


def minimum_detectable_effect(p_a: float, n_per_arm: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest accuracy gain over `p_a` that `n_per_arm` labelled requests per arm detect with `power`.

    Solved from the sample size formula so the two statements in the report agree exactly.
    """
    if n_per_arm <= 0 or math.isnan(p_a) or p_a >= 1:
        return NAN

    def gap(delta: float) -> float:
        return _continuous_size(p_a, p_a + delta, alpha, power) - n_per_arm

    top = 1 - p_a
    if gap(top) > 0:  # even a jump to 100% would not be detected reliably
        return NAN
    return float(optimize.brentq(gap, 1e-9, top))


def _continuous_size(p_a: float, p_b: float, alpha: float, power: float) -> float:
    """statsmodels' normal-approximation size: pooled variance under H0, unpooled under the alternative."""
    return float(samplesize_proportions_2indep_onetail(p_b - p_a, p_a, power, alpha=alpha,
                                                       alternative="two-sided"))


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


def paired_difference(only_a: int, only_b: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Accuracy difference B - A on `n` paired tickets, with its Wald interval for paired proportions
    (Agresti, Categorical Data Analysis, 10.1.1; statsmodels has the test, not this interval)."""
    if n <= 0:
        return NAN, NAN, NAN
    diff = (only_b - only_a) / n
    se = math.sqrt(max(0.0, only_a + only_b - (only_b - only_a) ** 2 / n)) / n
    half = _z(confidence) * se
    return diff, diff - half, diff + half


def paired_sample_size(discordant: float, diff: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Paired tickets needed for McNemar's test (Connor 1987; statsmodels.stats.power has no McNemar):
    `discordant` is the share of tickets the models disagree on correctness, `diff` the accuracy
    difference to detect."""
    if math.isnan(discordant) or math.isnan(diff) or diff == 0:
        return math.inf if diff == 0 else NAN
    z_a, z_b = _z(1 - alpha), float(st.norm.ppf(power))
    psi = max(discordant, abs(diff))
    root = z_a * math.sqrt(psi) + z_b * math.sqrt(max(0.0, psi - diff * diff))
    return float(math.ceil(root**2 / diff**2))


def paired_mde(discordant: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest paired accuracy difference `n` tickets detect, at the observed discordant share."""
    if n <= 0 or math.isnan(discordant) or discordant <= 0:
        return NAN
    z_a, z_b = _z(1 - alpha), float(st.norm.ppf(power))
    return float(min(discordant, (z_a + z_b) * math.sqrt(discordant / n)))


# --- macro-F1 and its bootstrap interval --------------------------------------------------------


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Unweighted mean F1 over every label seen in either sequence (sklearn's `average="macro"`)."""
    if len(y_true) == 0:
        return NAN
    true, pred, k = _codes(y_true, y_pred)
    counts = np.bincount(true * k + pred, minlength=k * k).reshape(1, k, k)
    return float(_f1_from_confusion(counts)[0])


def macro_f1_interval(
    y_true: Sequence[str], y_pred: Sequence[str], confidence: float = 0.95, resamples: int = 400, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of macro-F1 (seeded, so the report is reproducible).

    Macro-F1 is not a proportion, so a Wilson interval does not apply; resampling the labelled
    requests is the honest way to show how much it would move with other tickets. The resamples
    are scored as stacked confusion matrices, which is what makes 400 of them cheap.
    """
    n = len(y_true)
    if n < 2:
        return NAN, NAN
    true, pred, k = _codes(y_true, y_pred)
    cells = true * k + pred
    rng = np.random.default_rng(seed)
    scores = []
    for start in range(0, resamples, 50):  # chunks bound memory at 50 x n indices
        size = min(50, resamples - start)
        picked = cells[rng.integers(0, n, size=(size, n))]
        offsets = (np.arange(size) * k * k)[:, None]
        counts = np.bincount((picked + offsets).ravel(), minlength=size * k * k).reshape(size, k, k)
        scores.append(_f1_from_confusion(counts))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.concatenate(scores), [tail, 100 - tail])
    return float(low), float(high)


def _codes(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    labels, codes = np.unique(np.concatenate([np.asarray(y_true, dtype=str), np.asarray(y_pred, dtype=str)]),
                              return_inverse=True)
    n = len(y_true)
    return codes[:n], codes[n:], len(labels)


def _f1_from_confusion(counts: np.ndarray) -> np.ndarray:
    """Macro-F1 per confusion matrix (rows true, columns predicted) over the labels present in it."""
    tp = np.diagonal(counts, axis1=1, axis2=2).astype(float)
    denom = counts.sum(axis=2) + counts.sum(axis=1)
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)
