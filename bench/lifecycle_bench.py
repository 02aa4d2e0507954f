"""`python bench/lifecycle_bench.py [runs] [--look-minutes M]`: does the experiment loop close itself safely?

Issue 24: a new challenger starts at the first ramp step, and the experiment DAG looks at the A/B
data every few minutes and takes at most one action: hold, ramp, promote, stop, or (in the watch
after a promotion) roll back. This bench drives the code that acts, over simulated time:
`analysis.compare.compare` + `analysis.verdict.decide` make the `Look` that `analysis.rollout.decide`
reads, `analysis.watch.compare_champions` makes the `Watch` that `analysis.rollout.watch` reads, and
`router.assign.assign` gives each customer's arm. Settings are the defaults (`RolloutSettings()`,
`ABSettings()`, environment TICKET_AB_ROLLOUT_* / TICKET_AB_TEST_* if set; printed first); every
action mode is treated as auto (the action is applied, whatever the mode).

The simulation (chosen before the first run):
- 2,000 customers with Zipf ticket volumes (customer k sends a share proportional to 1/k^0.8: the
  busiest sends ~5% of the tickets, as the generator's busiest does in ab_calibration). On a ticket of
  customer c the champion is right with probability expit(level + u_c), u_c ~ N(0, 0.8) (a logit random
  intercept), `level` set so the average accuracy is 0.75; the challenger with expit(level + u_c + theta),
  theta calibrated on 200,000 draws of u_c (not on the runs) so its average gain is the scenario's:
  0 (A/A), +8 pt, -8 pt.
- Tickets arrive as a Poisson stream of 300 an hour; half are labelled, each label arriving an
  exponential delay (mean 2 h) after its ticket. The DAG looks every `LOOK_MINUTES` = 180 simulated
  minutes in every run, A/A included, and no look is skipped. The product looks every 5 minutes; a
  coarser cadence only delays decisions (the interval is always valid, so more looks could not
  raise the error rates beyond alpha). 180 rather than 60 minutes for the runtime: a look costs
  `compare()` ~90 ms on the ~12,000 labelled requests of an average A/A look, an A/A run lasts the
  168 h maximum: the default run needs ~14 min of CPU at 180-minute looks (7 min on 2 idle cores),
  about three times that at 60-minute ones (`--look-minutes 60` runs them).
- The experiment starts at the first step (5%) at hour 0 (experiment id `lifecycle-<seed>`, the arm
  `router.assign.assign(customer, split, id)`: a ramp only adds customers to B). A look analyses the
  labelled requests whose label has arrived, `stratum` = the split the request was served at (the
  steps pooled as strata); labelled customers per arm are counted in the current step; the sample
  ratio is not simulated (no SRM flag) nor are guardrails (none breached). RAMP sets the next split
  from that look on; PROMOTE and STOP end the run; the rule itself stops at `max_hours`.
- Exposure: the share of the customers who sent a ticket during the experiment that the challenger
  ever served.
- Degraded: every +8 pt run continues after its promotion (where the rule did not promote, from the
  end of its experiment as if promoted by hand; counted) with the new champion serving everyone, 10
  pt below its predecessor on average (theta calibrated likewise). The watch looks every
  `LOOK_MINUTES`: the new champion's labelled requests since its promotion against the old champion's
  arm-A labelled requests of the experiment (`analysis.watch.compare_champions`), `rollout.watch`.
- Heavy-tailed (judged on its own; no ramp; `bench/heavy_tail.py`): 300 customers with volumes 1/k^1.1
  (the busiest ~20% of the traffic), each customer's accuracy Beta(3, 1.2) for A and A's + 0.08 (clipped
  at 1) for B (A/A: B = A); 4,000 requests, half labelled, customers 50/50 (split 0.5, one stratum),
  after 4,000 champion-only requests (half labelled) whose per-customer accuracy is the CUPED covariate
  the product uses when it has an earlier period (the experiment DAG reads TICKET_AB_TEST_PRIOR_DAYS
  before the experiment). The verdict (`compare` + `verdict.decide`) once at the end, and peeking:
  after every 10% of the labels, stopping at the first decisive verdict (promote or keep). The bars are
  judged on peeking (what the DAG does).

Bars, fixed before any run (a miss is reported, not tuned away):
- A/A: promoted in <= 5% of runs;
- +8 pt: promoted in >= 90% of runs (median simulated hours to the promotion printed);
- -8 pt: stopped in 100% of runs, and the largest exposure < the first step + 2 pt (< 7%);
- degraded: rolled back within `watch_hours` in >= 95% of runs;
- heavy-tailed, peeking: +8 pt promoted in >= 60% of runs, A/A promoted in <= 5%.

Development and debugging used seeds from 100,000 on; the reported numbers use seeds 0..runs-1.
Scenarios share seeds (common random numbers: the same customers, tickets and arms; only the
challenger differs). Runs go to 2 worker processes. The last line is parsed by other scripts (one line):

    lifecycle: A/A promoted a/N, +8pt promoted b/N (median T h), -8pt stopped c/N (max exposure E%),
    degraded rolled back d/N

Exit code 0 when every bar is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import heavy_tail  # bench/heavy_tail.py: the scripts of bench/ import each other from their folder
import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit, logit
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from analysis import rollout
from analysis.compare import compare
from analysis.verdict import KEEP, PROMOTE, Evidence, decide
from analysis.watch import compare_champions
from router.assign import assign
from ticket_ab.names import SPLIT, B
from ticket_ab.settings import ABSettings, RolloutSettings

RUNS = 200  # runs per scenario
WORKERS = 2
LOOK_MINUTES = 180.0
T0 = datetime(2026, 1, 5, tzinfo=UTC)
AA, PLUS, MINUS, DEGRADED = "A/A", "+8pt", "-8pt", "degraded"
GAINS = {AA: 0.0, PLUS: 0.08, MINUS: -0.08, DEGRADED: -0.10}  # challenger (degraded: new champion) - old
HEAVY_AA, HEAVY_PLUS = "heavy A/A", "heavy +8pt"
SECONDS = "seconds"
HEAVY = {"customers": heavy_tail.CUSTOMERS, "zipf": heavy_tail.ZIPF, "requests": heavy_tail.REQUESTS,
         "labelled": heavy_tail.LABELLED, "gain": heavy_tail.GAIN}
# Bars, fixed before the first run.
AA_MAX, PLUS_MIN, MINUS_STOPPED, EXPOSURE_OVER_FIRST_STEP, ROLLBACK_MIN = 0.05, 0.90, 1.0, 0.02, 0.95
HEAVY_POWER_MIN, HEAVY_AA_MAX = 0.60, 0.05


@dataclass(frozen=True)
class Population:
    """The simulated customers and their traffic."""

    customers: int = 2000
    zipf: float = 0.8  # customer k's volume is proportional to 1 / k^zipf
    p0: float = 0.75  # the champion's average accuracy
    sigma: float = 0.8  # customer spread on the logit scale
    rate: float = 300.0  # tickets per simulated hour
    labelled: float = 0.5  # share of tickets that get a label
    delay_h: float = 2.0  # mean label delay (exponential), hours
    look_minutes: float = LOOK_MINUTES

    def volumes(self) -> np.ndarray:
        return zipf(self.customers, self.zipf)


@dataclass(frozen=True)
class Setup:
    """Everything a run needs besides its seed (picklable: it travels to the worker processes)."""

    pop: Population
    policy: RolloutSettings
    th: ABSettings
    level: float  # logit of the champion's accuracy for a customer with u_c = 0
    thetas: dict[str, float]  # per scenario, the challenger's logit shift


def zipf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def calibrate(pop: Population) -> tuple[float, dict[str, float]]:
    """The logit level giving average accuracy p0, and per scenario the shift giving its average gain,
    on 200,000 draws of the customer effect (volumes do not depend on it, so this is also the
    request-weighted and the customer-capped average)."""
    u = pop.sigma * np.random.default_rng(0).standard_normal(200_000)
    base = logit(pop.p0)
    level = optimize.brentq(lambda c: expit(c + u).mean() - pop.p0, base - 5, base + 5)

    def shift(gain: float) -> float:
        return optimize.brentq(lambda t: expit(level + u + t).mean() - pop.p0 - gain, -6, 6) if gain else 0.0

    return float(level), {name: float(shift(gain)) for name, gain in GAINS.items()}


def make_setup(pop: Population | None = None, policy: RolloutSettings | None = None,
               th: ABSettings | None = None) -> Setup:
    pop = pop or Population()
    level, thetas = calibrate(pop)
    return Setup(pop, policy or RolloutSettings(), th or ABSettings(), level, thetas)


@dataclass(frozen=True)
class Stream:
    """Tickets in serving order: when, whose, when the label arrives (inf: never) and a uniform draw
    (right when the draw is below the serving model's accuracy on that customer)."""

    hour: np.ndarray
    customer: np.ndarray
    label_hour: np.ndarray
    draw: np.ndarray


def traffic(rng: np.random.Generator, pop: Population, start: float, hours: float) -> Stream:
    n = int(rng.poisson(pop.rate * hours))
    hour = start + np.sort(rng.random(n)) * hours
    customer = rng.choice(pop.customers, size=n, p=pop.volumes())
    labelled = rng.random(n) < pop.labelled
    label_hour = np.where(labelled, hour + rng.exponential(pop.delay_h, n), np.inf)
    return Stream(hour, customer, label_hour, rng.random(n))


@dataclass(frozen=True)
class World:
    """One run: its customers' effects, the tickets of the whole possible experiment and, per ramp step,
    which customers the router sends to B."""

    seed: int
    effect: np.ndarray
    stream: Stream
    arms: np.ndarray  # steps x customers: served by B at that step


def make_world(seed: int, setup: Setup) -> World:
    rng = np.random.default_rng(seed)
    effect = rng.normal(0.0, setup.pop.sigma, setup.pop.customers)
    stream = traffic(rng, setup.pop, 0.0, setup.policy.max_hours)
    experiment_id = f"lifecycle-{seed}"
    arms = np.array([[assign(f"c-{c}", split, experiment_id) == B for c in range(setup.pop.customers)]
                     for split in setup.policy.ramp_steps])
    return World(seed, effect, stream, arms)


@dataclass
class Ended:
    """How one experiment ended."""

    action: str  # promote | stop | undecided
    hours: float
    why: str  # promote | keep (the verdict) | max duration | other
    ramps: list[float] = field(default_factory=list)  # hours at which each later step took effect
    exposure: float = float("nan")
    looks: int = 0
    labelled: int = 0
    rollback_hours: float | None = None  # degraded runs: hours after the promotion, None: not rolled back
    by_hand: bool = False  # degraded runs: the rule had not promoted, the watch starts at the end


def served(world: World, changes: list[float], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ticket of `rows`: the index of the step it was served at, and whether B served it."""
    step = np.searchsorted(changes, world.stream.hour[rows], side="right") - 1
    return step, world.arms[step, world.stream.customer[rows]]


def analyse(outcomes: pd.DataFrame, per_arm: dict[str, int], th: ABSettings) -> rollout.Look:
    """The look the DAG would build: the CLI's comparison and verdict, as the rule reads them."""
    c = compare(outcomes, SPLIT, None, th, True)
    verdict = decide(Evidence(n_a=c["n_a"], n_b=c["n_b"], diff=c["diff"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                              needed_more=c["evidence"]["more_labelled"], sequential=True), th)
    return rollout.Look(verdict=verdict.action, reason=verdict.reason, diff=c["diff"], ci_low=c["ci_low"],
                        ci_high=c["ci_high"], labelled_customers=per_arm, labelled=c["n_a"] + c["n_b"])


def observe(world: World, accuracy: tuple[np.ndarray, np.ndarray], changes: list[float], now: float,
            setup: Setup) -> rollout.Look | None:
    """The look at `now`: every request whose label has arrived, stratified by the step it was served at."""
    rows = np.flatnonzero(world.stream.label_hour <= now)
    if not len(rows):
        return None
    step, in_b = served(world, changes, rows)
    customer = world.stream.customer[rows]
    right = world.stream.draw[rows] < np.where(in_b, accuracy[1][rows], accuracy[0][rows])
    steps = np.asarray(setup.policy.ramp_steps)
    outcomes = pd.DataFrame({"unit": customer, "in_b": in_b, "right": right, "stratum": steps[step]})
    current = step == len(changes) - 1
    per_arm = {"A": len(np.unique(customer[current & ~in_b])), "B": len(np.unique(customer[current & in_b]))}
    return analyse(outcomes, per_arm, setup.th)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def lifecycle(world: World, setup: Setup, scenario: str) -> tuple[Ended, list[float]]:
    """Look every `look_minutes` from the first step until the rule promotes or stops; the steps' start hours."""
    base = setup.level + world.effect[world.stream.customer]
    accuracy = (expit(base), expit(base + setup.thetas[scenario]))
    steps, every = setup.policy.ramp_steps, setup.pop.look_minutes / 60
    changes, look, k = [0.0], None, 0
    while True:
        k += 1
        now = k * every
        look = observe(world, accuracy, changes, now, setup)
        exp = rollout.Experiment(now=at(now), champion="1", challenger="2", split=steps[len(changes) - 1],
                                 mode=SPLIT, started=at(0), step_since=at(changes[-1]))
        decision = rollout.decide(exp, look, setup.policy)
        if decision.action == rollout.RAMP:
            assert decision.target_split == steps[len(changes)], decision
            changes.append(now)
        elif decision.action in (rollout.PROMOTE, rollout.STOP) or now > setup.policy.max_hours + 2 * every:
            break
    action = decision.action if decision.action in (rollout.PROMOTE, rollout.STOP) else "undecided"
    why = (rollout.PROMOTE if action == rollout.PROMOTE else "keep" if look is not None and look.verdict == KEEP
           else "max duration" if decision.reason.startswith("no decision after") else "other")
    ended = Ended(action, now, why, changes[1:], exposure(world, changes, now), k, look.labelled if look else 0)
    return ended, changes


def exposure(world: World, changes: list[float], end: float) -> float:
    """The share of the customers with a ticket before `end` whom the challenger served at least once."""
    rows = np.flatnonzero(world.stream.hour < end)
    _, in_b = served(world, changes, rows)
    customers = world.stream.customer[rows]
    active = len(np.unique(customers))
    return len(np.unique(customers[in_b])) / active if active else float("nan")


def watch_phase(world: World, setup: Setup, changes: list[float], promoted: float) -> float | None:
    """After a promotion at hour `promoted`: the degraded champion serves everyone; the hours after the
    promotion at which the watch rolls it back, or None when the watch ends without a rollback."""
    s, every = world.stream, setup.pop.look_minutes / 60
    post = traffic(np.random.default_rng([world.seed, 1]), setup.pop, promoted, setup.policy.watch_hours)
    experiment = np.flatnonzero((s.hour < promoted) & np.isfinite(s.label_hour))
    old = experiment[~served(world, changes, experiment)[1]]  # arm A: the old champion answered
    old_right = s.draw[old] < expit(setup.level + world.effect[s.customer[old]])
    new_right = post.draw < expit(setup.level + world.effect[post.customer] + setup.thetas[DEGRADED])
    k = 0
    while True:
        k += 1
        now = promoted + k * every
        seen_old, seen_new = s.label_hour[old] <= now, post.label_hour <= now
        outcomes = pd.DataFrame({"unit": np.concatenate([s.customer[old][seen_old], post.customer[seen_new]]),
                                 "right": np.concatenate([old_right[seen_old], new_right[seen_new]]),
                                 "after": np.repeat([False, True], [seen_old.sum(), seen_new.sum()])})
        exp = rollout.Experiment(now=at(now), champion="2", challenger=None, promoted_at=at(promoted), previous="1")
        decision = rollout.watch(exp, compare_champions(outcomes, setup.th), setup.policy)
        if decision.action == rollout.ROLLBACK:
            return k * every
        if k * every >= setup.policy.watch_hours:
            return None


def run_task(task: tuple[str, int], setup: Setup) -> tuple[str, int, object, float]:
    """One run of one scenario (a worker's unit of work): (scenario, seed, result, seconds)."""
    scenario, seed = task
    started = time.perf_counter()
    if scenario in (HEAVY_AA, HEAVY_PLUS):
        result: object = heavy_tail.run(seed, HEAVY["gain"] if scenario == HEAVY_PLUS else 0.0, True, setup.th)
    else:
        world = make_world(seed, setup)
        result, changes = lifecycle(world, setup, scenario)
        if scenario == PLUS:
            result.by_hand = result.action != rollout.PROMOTE
            result.rollback_hours = watch_phase(world, setup, changes, result.hours)
    return scenario, seed, result, time.perf_counter() - started


def _single_thread() -> None:
    threadpool_limits(1)  # two processes on two cores: no BLAS threads on top


def run_all(setup: Setup, runs: int, first_seed: int = 0, workers: int = WORKERS,
            progress: bool = True) -> dict[str, list]:
    """Every scenario's runs on seeds first_seed..first_seed+runs-1, results per scenario in seed order
    (and under SECONDS, each scenario's seconds of work summed over its runs)."""
    scenarios = [AA, MINUS, PLUS, HEAVY_AA, HEAVY_PLUS]  # the longest first, so the workers finish together
    tasks = [(scenario, seed) for scenario in scenarios for seed in range(first_seed, first_seed + runs)]
    work = functools.partial(run_task, setup=setup)
    found: dict[str, dict[int, object]] = {scenario: {} for scenario in scenarios}
    seconds = dict.fromkeys(scenarios, 0.0)
    bar = tqdm(total=len(tasks), desc="runs", unit="run", mininterval=10.0, disable=not progress, file=sys.stderr)
    with threadpool_limits(1):
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_single_thread) if workers > 1 else None
        try:
            for scenario, seed, result, took in (pool.imap_unordered(work, tasks) if pool else map(work, tasks)):
                found[scenario][seed] = result
                seconds[scenario] += took
                bar.update()
        finally:
            if pool:
                pool.close()
                pool.join()
    bar.close()
    return {**{scenario: [results[s] for s in sorted(results)] for scenario, results in found.items()},
            SECONDS: [seconds]}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float]) -> str:
    """`median (90th percentile)` of hours."""
    return f"{_median(values):.1f} ({np.percentile(values, 90):.1f})" if values else "n/a"


def lifecycle_row(name: str, ended: list[Ended], steps: tuple[float, ...]) -> str:
    """One scenario's line of the table."""
    n = len(ended)
    count = lambda pred: sum(1 for e in ended if pred(e))
    promoted = [e.hours for e in ended if e.action == rollout.PROMOTE]
    stopped = [e.hours for e in ended if e.action == rollout.STOP]
    reached = " / ".join(f"{count(lambda e, i=i: len(e.ramps) >= i) / n:.1%}" for i in range(1, len(steps)))
    exposures = [e.exposure for e in ended]
    return (f"| {name} | {len(promoted)}/{n} ({len(promoted) / n:.1%}) | {len(stopped)}/{n} "
            f"({count(lambda e: e.why == 'keep')} keep, {count(lambda e: e.why == 'max duration')} max duration, "
            f"{count(lambda e: e.why == 'other')} other) | {count(lambda e: e.action == 'undecided')} "
            f"| {_spread(promoted)} | {_spread(stopped)} | {reached} "
            f"| {_median(exposures):.1%} / {max(exposures):.1%} |")


def print_lifecycle(results: dict[str, list], setup: Setup) -> None:
    steps = setup.policy.ramp_steps
    print(f"| scenario | promoted | stopped | undecided | hours to promote: median (p90) | hours to stop: median (p90) "
          f"| reached {' / '.join(f'{s:.0%}' for s in steps[1:])} | exposure median / max |")
    print("|---|---|---|---|---|---|---|---|")
    for name in (AA, PLUS, MINUS):
        print(lifecycle_row(name, results[name], steps))
    plus = results[PLUS]
    won = [e for e in plus if e.action == rollout.PROMOTE]
    reach = ", ".join(f"{s:.0%} {_median([e.ramps[i] for e in plus if len(e.ramps) > i]):.1f}"
                      for i, s in enumerate(steps[1:]))
    at_step = ", ".join(f"{s:.0%}: {sum(len(e.ramps) == i for e in won)}" for i, s in enumerate(steps))
    print(f"\n+8pt: median hours to reach {reach}; promoted at step {at_step}; median labelled requests at the "
          f"promotion {_median([e.labelled for e in won]):,.0f}")
    back = [e.rollback_hours for e in plus if e.rollback_hours is not None]
    print(f"degraded (new champion {GAINS[DEGRADED] * 100:+.0f} pt after the promotion): rolled back {len(back)}/"
          f"{len(plus)} within {setup.policy.watch_hours:g} h (watch started at the end of the experiment, as if "
          f"promoted by hand, in {sum(e.by_hand for e in plus)}); hours after the promotion to the rollback: median "
          f"{_median(back):.1f}, max {max(back, default=float('nan')):.1f}")


def heavy_summary(results: dict[str, list]) -> dict[str, dict[str, float]]:
    out = {}
    for name in (HEAVY_AA, HEAVY_PLUS):
        runs = results[name]
        decided = [n for _, peek, n in runs if peek in (PROMOTE, KEEP)]
        out[name] = {"one_look": sum(one == PROMOTE for one, _, _ in runs) / len(runs),
                     "peeking": sum(peek == PROMOTE for _, peek, _ in runs) / len(runs),
                     "kept": sum(peek == KEEP for _, peek, _ in runs) / len(runs),
                     "decided": len(decided), "median_labelled": _median(decided)}
    return out


def print_heavy(heavy: dict[str, dict[str, float]], runs: int) -> None:
    print(f"\nheavy-tailed: {HEAVY['customers']} customers, volumes 1/k^{HEAVY['zipf']} (busiest "
          f"{zipf(HEAVY['customers'], HEAVY['zipf'])[0]:.1%}), accuracy Beta(3, 1.2), B = A + 8 pt clipped at 1; "
          f"{HEAVY['requests']:,} requests, {HEAVY['labelled']:,} labelled, split 0.5; {runs} runs each; CUPED on "
          f"an earlier period as large, its shrinkage strength estimated from it (empirical Bayes), each customer "
          f"capped at the customer cap plus its earlier labelled requests")
    print("| scenario | one look: promoted | peeking: promoted | peeking: kept | peeking: decided | "
          "median labelled to the decision |\n|---|---|---|---|---|---|")
    for name, h in heavy.items():
        print(f"| {name} | {h['one_look']:.1%} | {h['peeking']:.1%} | {h['kept']:.1%} | {h['decided']}/{runs} | "
              f"{h['median_labelled']:,.0f} |")


def bars(results: dict[str, list], heavy: dict[str, dict[str, float]], setup: Setup) -> list[tuple[str, bool, str]]:
    """(bar, met, measured) for every bar of the module docstring."""
    n = len(results[AA])
    promoted = {name: sum(e.action == rollout.PROMOTE for e in results[name]) for name in (AA, PLUS)}
    stopped = sum(e.action == rollout.STOP for e in results[MINUS])
    worst = max(e.exposure for e in results[MINUS])
    limit = setup.policy.ramp_steps[0] + EXPOSURE_OVER_FIRST_STEP
    back = sum(e.rollback_hours is not None for e in results[PLUS])
    return [(f"A/A promoted <= {AA_MAX:.0%}", promoted[AA] <= AA_MAX * n, f"{promoted[AA]}/{n}"),
            (f"+8pt promoted >= {PLUS_MIN:.0%}", promoted[PLUS] >= PLUS_MIN * n, f"{promoted[PLUS]}/{n}"),
            (f"-8pt stopped in {MINUS_STOPPED:.0%}", stopped >= MINUS_STOPPED * n, f"{stopped}/{n}"),
            (f"-8pt max exposure < {limit:.0%}", worst < limit, f"{worst:.1%}"),
            (f"degraded rolled back >= {ROLLBACK_MIN:.0%}", back >= ROLLBACK_MIN * n, f"{back}/{n}"),
            (f"heavy-tailed +8pt promoted (peeking) >= {HEAVY_POWER_MIN:.0%}",
             heavy[HEAVY_PLUS]["peeking"] >= HEAVY_POWER_MIN, f"{heavy[HEAVY_PLUS]['peeking']:.1%}"),
            (f"heavy-tailed A/A promoted (peeking) <= {HEAVY_AA_MAX:.0%}",
             heavy[HEAVY_AA]["peeking"] <= HEAVY_AA_MAX, f"{heavy[HEAVY_AA]['peeking']:.1%}")]


def final_line(results: dict[str, list]) -> str:
    """The one line other scripts parse (keep it verbatim)."""
    n = len(results[AA])
    promoted = {name: [e.hours for e in results[name] if e.action == rollout.PROMOTE] for name in (AA, PLUS)}
    stopped = sum(e.action == rollout.STOP for e in results[MINUS])
    worst = max(e.exposure for e in results[MINUS]) * 100
    back = sum(e.rollback_hours is not None for e in results[PLUS])
    return (f"lifecycle: A/A promoted {len(promoted[AA])}/{n}, +8pt promoted {len(promoted[PLUS])}/{n} "
            f"(median {_median(promoted[PLUS]):.1f} h), -8pt stopped {stopped}/{n} (max exposure {worst:.1f}%), "
            f"degraded rolled back {back}/{n}")


def describe(setup: Setup, runs: int, first_seed: int, workers: int) -> None:
    pop, p, th = setup.pop, setup.policy, setup.th
    print(f"{runs} runs per scenario (seeds {first_seed} to {first_seed + runs - 1}), {workers} worker processes")
    print(f"population: {pop.customers:,} customers, volumes 1/k^{pop.zipf} (busiest {pop.volumes()[0]:.1%}), "
          f"accuracy expit({setup.level:.3f} + u), u ~ N(0, {pop.sigma}) (average {pop.p0}); {pop.rate:g} tickets/h, "
          f"{pop.labelled:.0%} labelled after ~Exp(mean {pop.delay_h:g} h); a look every {pop.look_minutes:g} min")
    print("challenger logit shifts: " + ", ".join(f"{name} {GAINS[name] * 100:+.0f} pt -> theta {t:+.3f}"
                                                  for name, t in setup.thetas.items()))
    print(f"policy: steps {p.steps}, ramp at >= {p.min_customers} labelled customers per arm in the step, steps of "
          f">= {p.min_step_minutes:g} min, harm margin {p.harm_margin:g}, max {p.max_hours:g} h, "
          f"watch {p.watch_hours:g} h; "
          f"test: alpha {th.alpha}, min_gain {th.min_gain}, min_labelled {th.min_labelled}, horizon {th.horizon}, "
          f"customer cap {getattr(th, 'customer_cap', 'n/a')}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("runs", nargs="?", type=int, default=RUNS, help=f"runs per scenario (default {RUNS})")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first..first+runs-1 (reported: 0)")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"worker processes (default {WORKERS})")
    parser.add_argument("--look-minutes", type=float, default=LOOK_MINUTES,
                        help=f"simulated minutes between the DAG's looks (default {LOOK_MINUTES:g})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    setup = make_setup(Population(look_minutes=args.look_minutes))
    runs, first_seed, workers = args.runs, args.first_seed, args.workers
    describe(setup, runs, first_seed, workers)
    results = run_all(setup, runs, first_seed, workers)
    print_lifecycle(results, setup)
    heavy = heavy_summary(results)
    print_heavy(heavy, runs)
    checked = bars(results, heavy, setup)
    print()
    for name, met, measured in checked:
        print(f"  {'PASS' if met else 'FAIL'} {name}: {measured}")
    work = results[SECONDS][0]
    print(f"\n{sum(met for _, met, _ in checked)}/{len(checked)} bars met in {time.perf_counter() - started:.0f} s "
          f"(work per scenario: " + ", ".join(f"{name} {s:.0f} s" for name, s in work.items()) + ")")
    print(final_line(results))
    return 0 if all(met for _, met, _ in checked) else 1


if __name__ == "__main__":
    sys.exit(main())
