"""The always-valid bound (`analysis.sequential`): the mixture is scipy's integral, and peeking is safe."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from analysis import sequential
from analysis.inference import Estimate
from ticket_ab.settings import ABSettings

TH = ABSettings()


def _mixture(z: float, information: float, rho2: float) -> float:
    """Robbins' one-sided normal mixture of likelihood ratios, integrated numerically."""
    s = z * math.sqrt(information)
    half_normal = lambda lam: 2 * norm.pdf(lam, scale=math.sqrt(rho2))  # noqa: E731
    return integrate.quad(lambda lam: math.exp(lam * s - lam * lam * information / 2) * half_normal(lam),
                          0, math.inf)[0]


@pytest.mark.parametrize(("z", "n"), [(1.0, 500), (2.5, 2000), (3.2, 8000)])
def test_the_likelihood_ratio_is_the_integral_of_the_normal_mixture(z, n):
    rho2 = (-2 * math.log(TH.alpha) + math.log(1 - 2 * math.log(TH.alpha))) / TH.horizon
    assert sequential.likelihood_ratio(z, n, TH) == pytest.approx(_mixture(z, n, rho2), rel=1e-6)


def test_the_bound_sits_where_the_evidence_reaches_one_over_alpha():
    for n in (300, 2000, 10_000):
        assert sequential.likelihood_ratio(sequential.multiplier(n, TH), n, TH) == pytest.approx(1 / TH.alpha)


def test_the_always_valid_bound_is_wider_than_the_fixed_one_and_tightest_near_the_horizon():
    fixed = sequential.multiplier(2000, TH, sequential=False)
    assert fixed == pytest.approx(norm.ppf(1 - TH.alpha))
    widths = {n: sequential.multiplier(n, TH) for n in (200, 1000, 2000, 4000, 20_000)}
    assert all(w > fixed for w in widths.values())
    assert min(widths, key=widths.get) in (1000, 2000, 4000)


def test_peeking_after_every_tenth_stays_below_alpha_only_with_the_always_valid_bound():
    """10,000 A/A random walks looked at 10 times: how often does a lower bound ever clear zero?"""
    rng = np.random.default_rng(0)
    looks = np.arange(200, 2001, 200)
    sums = np.cumsum(rng.normal(0.0, math.sqrt(200), (10_000, 10)), axis=1)  # the walk at each look
    z = sums / np.sqrt(looks)
    always_valid = np.array([sequential.multiplier(n, TH) for n in looks])
    fixed = sequential.multiplier(2000, TH, sequential=False)
    assert (z > always_valid).any(axis=1).mean() <= TH.alpha
    assert (z > fixed).any(axis=1).mean() > 2 * TH.alpha  # the classic bound, looked at ten times


def test_what_the_test_still_needs_is_where_the_bound_would_clear_the_target():
    est = Estimate(value=0.05, se=0.02, units=300, n=1000)
    total = sequential.labelled_needed(est, 0.01, TH)
    assert total > 1000
    se_then = 0.02 * math.sqrt(1000 / total)
    assert (sequential.multiplier(total, TH) + norm.ppf(TH.power)) * se_then == pytest.approx(0.04, rel=0.01)
    assert sequential.labelled_needed(Estimate(0.01, 0.02, 300, 1000), 0.01, TH) == math.inf
    assert math.isnan(sequential.labelled_needed(Estimate(0.05, math.nan, 1, 10), 0.01, TH))
