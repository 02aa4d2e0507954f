"""Peek-safe bounds: how far from the estimate a customer-level bound must sit to stay valid at every look.

`analysis.py --promote` may run after every batch and from a scheduled job. A fixed-horizon bound
(estimate - 1.645 SE) is valid for one look; looked at again and again until it clears the minimum
gain, it promotes a no-better challenger far more often than alpha. The default is therefore an
always-valid bound: an asymptotic confidence sequence in the sense of Waudby-Smith, Arnold, Wu,
Howard and Ramdas ("Time-uniform central limit theory and asymptotic confidence sequences", Annals
of Statistics 2024), the family GrowthBook and Eppo use. Each end is the boundary of a one-sided
normal-mixture martingale (Robbins; Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", one-sided normal mixture):

    M(z) = 2 (1 + x)^(-1/2) * exp(x z^2 / (2 (1 + x))) * Phi(z * sqrt(x / (1 + x))),   x = rho^2 * information,

the likelihood ratio of "a gain beyond the bound" mixed over a half-normal prior; by Ville's
inequality it ever reaches 1/alpha with probability at most alpha, so the bound excludes a value
when M of its standardised distance z reaches 1/alpha, and M is the evidence the report shows
("a likelihood ratio of 6 of the 20 needed"). Each end of the interval is such a one-sided bound at
alpha, so the two-sided interval has level 1 - 2 alpha and a false promotion (the lower end above a
gain that is not there) has probability at most alpha, however often it is looked at. Information
is counted in labelled requests; rho is fixed in advance so the bound is tightest at `horizon`
labelled requests (GrowthBook's N*): rho^2 * horizon = -2 log(alpha) + log(1 - 2 log(alpha)). No kept
library has confidence sequences, so these lines carry the reference; the tests check M against
scipy's numerical integral of the mixture and the false-promotion rate under peeking.
"""

from __future__ import annotations

import functools
import math

from scipy import optimize
from scipy.special import log_ndtr
from scipy.stats import norm

from analysis.inference import Estimate
from ticket_ab.settings import ABSettings

NAN = float("nan")


def _x(n: float, th: ABSettings) -> float:
    """rho^2 times the information of `n` labelled requests."""
    log_a = math.log(th.alpha)
    return (-2 * log_a + math.log(1 - 2 * log_a)) * n / th.horizon


def multiplier(n: float, th: ABSettings, sequential: bool = True) -> float:
    """Standard errors between the estimate and each end: the one-sided mixture boundary at `n` labelled
    requests (always valid), or the one-sided normal quantile (valid at one planned look)."""
    if not sequential:
        return float(norm.ppf(1 - th.alpha))
    if not n > 0:
        return math.inf
    return _boundary(_x(n, th), th.alpha)


@functools.lru_cache(maxsize=65536)
def _boundary(x: float, alpha: float) -> float:
    """The z at which the mixture reaches 1/alpha (cached: the planning search asks for it often)."""
    return float(optimize.brentq(lambda z: _log_ratio(z, x) + math.log(alpha), 0.0, 100.0))


def _log_ratio(z: float, x: float) -> float:
    return (math.log(2) - 0.5 * math.log1p(x) + x * z * z / (2 * (1 + x))
            + float(log_ndtr(z * math.sqrt(x / (1 + x)))))


def likelihood_ratio(z: float, n: float, th: ABSettings) -> float:
    """The mixture martingale M at standardised distance |z| after `n` labelled requests (evidence in
    the direction of z); the bound on that side clears the value exactly when M reaches 1/alpha."""
    if math.isnan(z) or not n > 0:
        return NAN
    return math.exp(min(700.0, _log_ratio(abs(z), _x(n, th))))


def interval(est: Estimate, th: ABSettings, sequential: bool = True) -> tuple[float, float]:
    """The estimate +- the multiplier at its own number of labelled requests times its SE."""
    half = multiplier(est.n, th, sequential) * est.se
    return (NAN, NAN) if math.isnan(half) or math.isnan(est.value) else (est.value - half, est.value + half)


def labelled_needed(est: Estimate, target: float, th: ABSettings, sequential: bool = True) -> float:
    """Labelled requests (in all) at which the interval would exclude `target` with probability
    `th.power`, if the observed difference is the truth and the SE shrinks as 1/sqrt(n): what the
    test still needs. `inf` when the observed difference equals the target, nan without an SE."""
    if any(math.isnan(v) for v in (est.value, est.se)) or not est.n:
        return NAN
    gap = abs(est.value - target)
    if gap == 0:
        return math.inf
    if est.se == 0:
        return float(est.n)
    z_power = float(norm.ppf(th.power))

    def short(m: float) -> float:  # > 0 while m requests are not enough
        return (multiplier(m, th, sequential) + z_power) * est.se * math.sqrt(est.n / m) - gap

    if short(est.n) <= 0:
        return float(est.n)
    top = float(est.n)
    while short(top) > 0:
        top *= 2
        if top > 1e12:
            return math.inf
    return float(math.ceil(optimize.brentq(short, top / 2 if top > est.n else est.n, top)))
