"""`python bench/ab_calibration.py`: how often does the A/B verdict promote, with and without a real gain?

`analysis.py --promote` moves the champion alias, so its false-promotion rate is the product's most
important number. This bench measures it, and the power, on simulated experiments:

1. The clustering is the generator's own: a baseline model (trained on 4,000 baseline tickets)
   scores 20,000 new_product tickets, as in the demo, and a logit random-intercept model
   (statsmodels' BinomialBayesMixedGLM) measures how much its accuracy differs between customers;
   the customers' ticket volumes (Zipf-skewed) are the generator's too. Nothing below is tuned.
2. Each experiment draws a fresh customer pool with that spread, splits customers 50/50 and
   simulates 2,000 labelled requests as outcome arrays (no HTTP): request j of customer c in arm
   B is right with probability expit(logit(p0) + u_c + theta), theta set so the request-weighted
   gain is the scenario's (0, +5 or +8 points). A second, stress pool doubles the spread.
3. Every rule sees the same data. "Peeking" runs it after every 10% of the labelled requests and
   stops at its first decisive verdict (promote or keep); "one look" runs it once at the end.
   The old rule is the request-level z-test analysis.py used before issue 11 (promote on p < 0.05
   and a positive difference); the new rule is `analysis.compare.compare` + `analysis.verdict.decide`,
   the very functions the CLI calls, with the default settings (guardrails are not simulated).

Bars fixed before the first run: A/A with peeking promotes in at most 5% of runs (alpha), and a
true +8 point gain is promoted in at least 80% of runs; +5 points is reported.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit, logit
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

from analysis.compare import compare
from analysis.verdict import COLLECT, PROMOTE, Evidence, decide
from retrain.contracts.names import SPLIT
from retrain.contracts.settings import ABSettings
from retrain.ml import stats
from retrain.ml.features import baseline_pipeline
from retrain.simulate.generator import generate

RUNS = 300  # experiments per scenario (the issue asks for at least 200)
LABELLED = 2000
LOOKS = 10
TH = ABSettings()
NO_TOPICS = {"per_topic_accuracy": {}}


@dataclass(frozen=True)
class Pool:
    p0: float  # champion accuracy (request-weighted)
    sigma: float  # customer spread on the logit scale
    volumes: np.ndarray  # each customer's share of the tickets


def measure_pool() -> Pool:
    """The generator's customer heterogeneity, as the demo's champion sees it on drifted traffic."""
    train = generate("baseline", 4000, seed=1)
    model = baseline_pipeline().fit(train, train.topic)
    test = generate("new_product", 20_000, seed=3)
    right = (model.predict(test) == test.topic.to_numpy()).astype(float)
    frame = pd.DataFrame({"right": right, "customer": test.customer_id.to_numpy()})
    fit = BinomialBayesMixedGLM.from_formula("right ~ 1", {"customer": "0 + C(customer)"}, frame).fit_vb()
    sigma = float(np.exp(fit.vcp_mean[0]))  # vcp is the log standard deviation of the customer effect
    volumes = frame["customer"].value_counts(normalize=True).to_numpy()
    print(f"generator pool: {len(volumes)} customers, busiest {volumes[0]:.1%} of tickets; champion accuracy "
          f"{right.mean():.3f}; customer spread sigma_u = {sigma:.2f} on the logit scale")
    return Pool(float(right.mean()), sigma, volumes)


def shift_for(gain: float, pool: Pool) -> tuple[float, float]:
    """The population's logit level (request-weighted accuracy p0) and the shift theta of B that
    makes the request-weighted accuracy gain over the customer population equal `gain`."""
    u = pool.sigma * np.random.default_rng(0).standard_normal(20_000)
    base = logit(pool.p0)
    level = optimize.brentq(lambda c: expit(c + u).mean() - pool.p0, base - 5, base + 5)
    theta = optimize.brentq(lambda t: expit(level + u + t).mean() - pool.p0 - gain, -5, 5) if gain else 0.0
    return level, theta


def experiment(pool: Pool, level: float, theta: float, seed: int) -> pd.DataFrame:
    """One experiment's labelled requests in arrival order: customer, arm, right or not."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0.0, pool.sigma, len(pool.volumes))
    in_b = rng.random(len(pool.volumes)) < 0.5
    customer = rng.choice(len(pool.volumes), size=LABELLED, p=pool.volumes)
    p = expit(level + effect[customer] + theta * in_b[customer])
    return pd.DataFrame({"unit": customer, "in_b": in_b[customer], "right": rng.random(LABELLED) < p})


def new_rule(rows: pd.DataFrame, seq: bool) -> str:
    """The CLI's comparison and verdict on these outcomes."""
    c = compare(rows, SPLIT, {"A": NO_TOPICS, "B": NO_TOPICS}, TH, seq)
    return decide(Evidence(n_a=c["n_a"], n_b=c["n_b"], diff=c["diff"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                           needed_more=c["evidence"]["more_labelled"], sequential=seq), TH).action


def old_rule(rows: pd.DataFrame) -> str:
    """The verdict before issue 11: request-level z-test, promote on any significant gain."""
    a, b = rows.loc[~rows["in_b"], "right"], rows.loc[rows["in_b"], "right"]
    if min(len(a), len(b)) < TH.min_labelled:
        return COLLECT
    test = stats.two_proportion_test(int(a.sum()), len(a), int(b.sum()), len(b))
    if test.p_value < TH.alpha:
        return PROMOTE if test.diff > 0 else "keep"
    return "keep" if test.ci_high < TH.min_gain else COLLECT


def promoted(rows: pd.DataFrame, rule, peeking: bool) -> bool:
    """Whether the first decisive verdict (after every 10% when peeking, else once at the end) promotes."""
    looks = [LABELLED * k // LOOKS for k in range(1, LOOKS + 1)] if peeking else [LABELLED]
    for n in looks:
        action = rule(rows.iloc[:n])
        if action != COLLECT:
            return action == PROMOTE
    return False


RULES = {
    "old rule, one look": (old_rule, False),
    "old rule, peeking": (old_rule, True),
    "new fixed-horizon, one look": (lambda r: new_rule(r, False), False),
    "new always-valid, peeking": (lambda r: new_rule(r, True), True),
}


def scenario(pool: Pool, gain: float, runs: int) -> dict[str, float]:
    hits = dict.fromkeys(RULES, 0)
    level, theta = shift_for(gain, pool)
    for seed in range(runs):
        rows = experiment(pool, level, theta, seed)
        for name, (rule, peeking) in RULES.items():
            hits[name] += promoted(rows, rule, peeking)
    return {name: count / runs for name, count in hits.items()}


def main(runs: int = RUNS) -> int:
    started = time.perf_counter()
    pool = measure_pool()
    stress = Pool(pool.p0, 2 * pool.sigma, pool.volumes)
    cases = [("A/A (no gain): false promotions", pool, 0.0), ("+5 pts: promotions", pool, 0.05),
             ("+8 pts: promotions", pool, 0.08), ("stress, 2x spread, A/A", stress, 0.0),
             ("stress, 2x spread, +8 pts", stress, 0.08)]
    print(f"{runs} experiments per row, {LABELLED:,} labelled requests each, looks after every {100 // LOOKS}%; "
          f"alpha {TH.alpha}, min_gain {TH.min_gain}, horizon {TH.horizon}\n")
    header = "| scenario | " + " | ".join(RULES) + " |"
    print(header + "\n|" + "---|" * (len(RULES) + 1))
    results = {}
    for label, p, gain in cases:
        results[label] = scenario(p, gain, runs)
        print(f"| {label} | " + " | ".join(f"{v:.1%}" for v in results[label].values()) + " |", flush=True)
    new = "new always-valid, peeking"
    bars = [("A/A with peeking: false promotions <= 5%", results[cases[0][0]][new] <= 0.05,
             results[cases[0][0]][new]),
            ("+8 pts with peeking: promoted in >= 80%", results[cases[2][0]][new] >= 0.80, results[cases[2][0]][new])]
    print()
    for name, met, value in bars:
        print(f"  {'ok  ' if met else 'MISS'} {name}: {value:.1%}")
    print(f"\n{sum(m for _, m, _ in bars)}/{len(bars)} bars met in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS))
