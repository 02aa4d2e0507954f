"""`python bench/heavy_tail.py [runs] [first_seed]`: issue 24's heavy-tailed customer base, with and without CUPED.

The design (fixed in the issue, nothing here is tuned on outcomes): 300 customers, customer k sending a
share of the tickets proportional to 1/k^1.1 (the busiest ~20%); the champion is right on a ticket of
customer k with probability p_k ~ Beta(3, 1.2), the challenger with min(1, p_k + gain). The experiment
has 4,000 requests, a random half of them labelled, customers split 50/50 (`router.assign.assign`, as
bench/lifecycle_bench.py's heavy-tailed run does, with the same draws: `prior=False` gives its rows).
Before it, the same customers sent 4,000 requests that only the champion answered, a random half of them
labelled: each customer's earlier accuracy, shrunk towards the pooled earlier mean
(`analysis.covariate.customer_prior`, strength estimated from the earlier labels), is the CUPED covariate,
and its earlier labelled requests raise its cap (`ABSettings.customer_cap` plus them), as in the product. It is drawn
after the experiment's rows, so with and without it the experiment is the same (common random numbers).

`heavy_tailed_experiment` gives the outcome rows `analysis.compare.compare` reads; `main` measures the
verdict (`compare` + `verdict.decide`, default `ABSettings`, always-valid interval) once at the end and
peeking (after every 10% of the labels, stopping at the first promote or keep), with and without the
covariate, on seeds from 100,000 on.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import pandas as pd

from analysis.compare import compare
from analysis.covariate import PRIOR, PRIOR_N, customer_prior
from analysis.verdict import KEEP, PROMOTE, Evidence, decide
from router.assign import assign
from ticket_ab.names import SPLIT, B
from ticket_ab.settings import ABSettings

CUSTOMERS, ZIPF, REQUESTS, LABELLED, EARLIER_REQUESTS, EARLIER_LABELLED = 300, 1.1, 4000, 2000, 4000, 2000
LOOKS, GAIN, RUNS, FIRST_SEED = 10, 0.08, 100, 100_000


def volumes(n: int = CUSTOMERS, exponent: float = ZIPF) -> np.ndarray:
    """Each customer's share of the tickets, proportional to 1/k^exponent."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def heavy_tailed_experiment(seed: int, gain: float, prior: bool, strength: float | None = None) -> pd.DataFrame:
    """The labelled requests of one experiment in arrival order: `unit`, `in_b`, `right`, `stratum` (one ramp
    step), `look` (the share of the experiment's labels in by this row: peeking at 10% takes look <= 0.1)
    and, with `prior`, the columns the product's CUPED adds (`analysis.covariate.with_prior`): the customer's
    earlier accuracy under the champion, shrunk with `strength` labels of the pooled earlier mean (default
    `ABSettings().prior_strength`), and its earlier labelled requests, which raise its cap."""
    rng = np.random.default_rng(seed)
    share = volumes()
    acc_a = rng.beta(3.0, 1.2, CUSTOMERS)
    acc_b = np.clip(acc_a + gain, 0.0, 1.0)
    in_b = np.array([assign(f"c-{c}", 0.5, f"heavy-{seed}") == B for c in range(CUSTOMERS)])
    requests = rng.choice(CUSTOMERS, size=REQUESTS, p=share)
    unit = requests[np.sort(rng.choice(REQUESTS, LABELLED, replace=False))]
    right = rng.random(len(unit)) < np.where(in_b[unit], acc_b[unit], acc_a[unit])
    rows = pd.DataFrame({"unit": unit, "in_b": in_b[unit], "right": right, "stratum": 0.5,
                         "look": np.arange(1, len(unit) + 1) / len(unit)})
    earlier = rng.choice(CUSTOMERS, size=EARLIER_REQUESTS, p=share)  # drawn last: the experiment stays the same
    earlier_unit = earlier[np.sort(rng.choice(EARLIER_REQUESTS, EARLIER_LABELLED, replace=False))]
    earlier_right = rng.random(len(earlier_unit)) < acc_a[earlier_unit]
    if not prior:
        return rows
    strength = ABSettings().prior_strength if strength is None else strength
    return rows.assign(**{PRIOR: customer_prior(unit, earlier_unit, earlier_right, strength),
                          PRIOR_N: np.bincount(earlier_unit, minlength=CUSTOMERS)[unit]})


def verdict(rows: pd.DataFrame, th: ABSettings) -> str:
    """The CLI's comparison and verdict on these outcome rows (always-valid, no guardrails simulated)."""
    c = compare(rows, SPLIT, None, th, True)
    return decide(Evidence(n_a=c["n_a"], n_b=c["n_b"], diff=c["diff"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                           needed_more=c["evidence"]["more_labelled"], sequential=True), th).action


def run(seed: int, gain: float, prior: bool, th: ABSettings) -> tuple[str, str, int]:
    """(verdict at the end, first decisive verdict when peeking or the last one, labelled requests then)."""
    rows = heavy_tailed_experiment(seed, gain, prior)
    one_look = verdict(rows, th)
    for k in range(1, LOOKS + 1):
        seen = rows[rows["look"] <= k / LOOKS + 1e-12]
        action = verdict(seen, th)
        if action in (PROMOTE, KEEP):
            return one_look, action, len(seen)
    return one_look, action, len(rows)


def main(runs: int = RUNS, first_seed: int = FIRST_SEED) -> int:
    th, started = ABSettings(), time.perf_counter()
    print(f"heavy-tailed: {CUSTOMERS} customers, volumes 1/k^{ZIPF} (busiest {volumes()[0]:.1%}), accuracy "
          f"Beta(3, 1.2), B = A + {GAIN:.0%} clipped at 1; {REQUESTS:,} requests ({LABELLED:,} labelled) after "
          f"{EARLIER_REQUESTS:,} champion-only ones ({EARLIER_LABELLED:,} labelled); seeds {first_seed} to "
          f"{first_seed + runs - 1}; prior strength {th.prior_strength or 'estimated (empirical Bayes)'}, customer cap "
          f"{th.customer_cap} plus the customer's earlier labelled requests\n")
    print("| scenario | covariate | one look: promoted | peeking: promoted | peeking: kept | "
          "median labelled to a decision (peeking) |\n|---|---|---|---|---|---|")
    for name, gain in (("A/A", 0.0), (f"+{GAIN * 100:.0f} pt", GAIN)):
        for prior in (False, True):
            out = [run(seed, gain, prior, th) for seed in range(first_seed, first_seed + runs)]
            decided = [n for _, action, n in out if action in (PROMOTE, KEEP)]
            median = f"{statistics.median(decided):,.0f} ({len(decided)}/{runs} decided)" if decided else "n/a"
            promoted, kept = (sum(a == action for _, a, _ in out) / runs for action in (PROMOTE, KEEP))
            print(f"| {name} | {'earlier accuracy' if prior else 'none'} | "
                  f"{sum(one == PROMOTE for one, _, _ in out) / runs:.0%} | {promoted:.0%} | {kept:.0%} | "
                  f"{median} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
