"""B against A on the analysed period: the customer-level accuracy comparison, its evidence, per topic.

Split mode compares two groups of customers: the difference of two ratio-of-sums accuracies with
its cluster-robust standard error. Shadow mode has both models answer the same tickets, so the
comparison is paired: the mean per-ticket difference (B right - A right), again clustered by
customer; McNemar's test (statsmodels) on the discordant tickets is shown beside it for reference.
Either way the interval is the always-valid one by default (`analysis.sequential`).

The estimand is declared in advance (`ABSettings.customer_cap`): each customer's labelled requests
weigh as at most `customer_cap` requests plus its earlier labelled requests (CUPED's record, when the
window has one). A customer's mean is worth more labels only while its binomial noise p(1-p)/n
exceeds what is unknown about its level: without a record, the spread between customers (about
0.2 / 0.02 = 10 requests); past that, more of one busy customer's labels mostly make the comparison
about that customer. Its earlier record pins its level (the covariate removes it), so each earlier
label lets one more of its labels count: with a record as large as the experiment's, a busy customer
weighs about as its requests do, where the covariate has made that the most precise estimate
(bench/heavy_tail.py compares the caps). On a heavy-
tailed base (the largest customer sending a fifth of the traffic) the request-weighted interval is
so wide that a real 8-point gain is rarely concluded, and its cluster-robust standard error, resting
on one dominant cluster, is too small besides; the capped interval is narrower and keeps its level
(tests/unit/analysis/test_analysis_estimand.py). The weights depend on customers' volumes, not on
their arm, so the capped difference is unbiased for its estimand under randomisation; the
request-weighted difference is reported beside it. A ramp (the challenger's share
raised in steps within one experiment) is pooled stratified by step (`inference.cluster_diff`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis import inference, sequential
from analysis.arms import counts as request_counts
from analysis.covariate import PRIOR, PRIOR_N
from analysis.fmt import likelihood_ratio, num, pts
from retrain.ml import stats
from ticket_ab.names import SHADOW
from ticket_ab.settings import ABSettings

# outcome column -> (its name in the report, what the test's name says the difference is adjusted on)
COVARIATES = {"covariate": ("champion confidence", "the champion's confidence (CUPAC)"),
              PRIOR: ("customer's earlier accuracy", "each customer's earlier accuracy (CUPED)")}


def compare(outcomes: pd.DataFrame, mode: str, arms: dict[str, Any] | None, th: ABSettings,
            seq: bool) -> dict[str, Any]:
    """B - A accuracy on `outcomes` (one row per `count` labelled requests alike but for their covariate: `unit`,
    `in_b`, `right`, optionally `covariate` with `covariate_var` its variance among them, and the ramp step
    `stratum`, and in shadow mode `right_a`/`right_b`; `arms.pooled` gives them), with its
    interval,
    evidence and the labelled requests still needed; per topic too when the `arms` (their summaries) are given."""
    cap, earlier = th.customer_cap, outcomes[PRIOR_N] if PRIOR_N in outcomes else None
    counts = request_counts(outcomes)
    row_weights = inference.capped_weights(outcomes["unit"], cap, earlier, counts)
    capped = int(outcomes["unit"][row_weights < 1].nunique())  # customers above their cap
    weights = row_weights if capped else None  # None: request-weighted, as ever
    strata = ramp_steps(outcomes) if mode != SHADOW else None  # a pair shares its ticket: steps cancel out
    if mode == SHADOW:
        paired = outcomes["right_b"].astype(float) - outcomes["right_a"].astype(float)
        diff = inference.cluster_mean(paired, outcomes["unit"], weights=weights, counts=counts)
        uncapped = diff if weights is None else inference.cluster_mean(paired, outcomes["unit"], counts=counts)
        adjustment, mcnemar = _unadjusted(diff, uncapped), _mcnemar(outcomes)
        kind, name = "paired", "paired difference, customer-clustered"
        n_a = n_b = int(counts.sum())
    else:
        diff, adjustment = _split_diff(outcomes, weights, strata)
        mcnemar, kind, name = None, "independent", "difference of ratio-of-sums accuracies, customer-clustered"
        n_a, n_b = int(counts[~outcomes["in_b"]].sum()), int(counts[outcomes["in_b"]].sum())
    n_strata = 1 if strata is None else int(strata.nunique())
    name += ((f", customer-capped (at most {cap} labelled requests a customer)" if capped else "")
             + (f", stratified by {n_strata} ramp steps" if n_strata > 1 else "")
             + (f", {adjustment['statement']}" if adjustment["applied"] else ""))
    low, high = sequential.interval(diff, th, seq)
    return {"kind": kind, "test": name, "interval": _interval_name(th, seq), "sequential": seq,
            "n_a": n_a, "n_b": n_b, "units": diff.units, "diff": diff.value, "se": diff.se,
            "ci_low": low, "ci_high": high, "mcnemar": mcnemar, "evidence": evidence(diff, th, seq),
            "estimand": _estimand(cap, capped, n_strata, adjustment["uncapped_diff"], earlier is not None),
            "strata": n_strata,
            "adjustment": adjustment, "per_topic": _per_topic(arms["A"], arms["B"]) if arms else []}


def ramp_steps(outcomes: pd.DataFrame) -> pd.Series | None:
    """The ramp step (`stratum`) of each outcome row when the rows span more than one step, else None."""
    steps = outcomes["stratum"] if "stratum" in outcomes else None
    return steps if steps is not None and steps.nunique() > 1 else None


def _mcnemar(outcomes: pd.DataFrame) -> dict[str, Any]:
    """McNemar's test on the discordant tickets: request-level, shown for reference only."""
    counts = request_counts(outcomes)
    only_a = int(counts[outcomes["right_a"] & ~outcomes["right_b"]].sum())
    only_b = int(counts[~outcomes["right_a"] & outcomes["right_b"]].sum())
    test = stats.mcnemar(only_a, only_b)
    return {"only_a_right": only_a, "only_b_right": only_b, "statistic": test.statistic,
            "p_value": test.p_value, "method": test.method, "pairs": int(counts.sum())}


def _unadjusted(raw: inference.Estimate, uncapped: inference.Estimate) -> dict[str, Any]:
    """The adjustment entry of an unadjusted comparison: its own numbers, and the request-weighted ones."""
    return {"applied": False, "covariate": None, "variance_reduction": math.nan, "unadjusted_diff": raw.value,
            "unadjusted_se": raw.se, "uncapped_diff": uncapped.value, "uncapped_se": uncapped.se}


def _split_diff(outcomes: pd.DataFrame, weights: np.ndarray | None,
                strata: pd.Series | None) -> tuple[inference.Estimate, dict[str, Any]]:
    """B - A (capped by `weights`, stratified by ramp step), adjusted on the covariates there for every row:
    `covariate` (the champion's confidence on every labelled ticket of both arms, CUPAC: logged by the router or
    scored offline; a cell's mean, with `covariate_var` its variance among the cell's requests) and
    `prior` (the customer's earlier accuracy, CUPED, with `prior_n` its earlier labelled requests), both
    together when both are there; the share of variance they removed is reported, so a reader sees what the
    adjustment bought, and so is the unadjusted request-weighted difference (`uncapped_diff`, the arms'
    accuracies' difference when there is one step), so a reader sees what the declared estimand changed."""
    right, in_b, units = outcomes["right"].astype(float), outcomes["in_b"], outcomes["unit"]
    counts = request_counts(outcomes)
    raw = inference.cluster_diff(right, in_b, units, strata=strata, weights=weights, counts=counts)
    uncapped = raw if weights is None else inference.cluster_diff(right, in_b, units, strata=strata, counts=counts)
    per_customer = outcomes.drop_duplicates("unit")[PRIOR_N] if PRIOR_N in outcomes else None
    earlier = {} if per_customer is None else {"earlier_customers": int((per_customer > 0).sum()),
                                               "earlier_labelled": int(per_customer.sum())}
    unadjusted = {**_unadjusted(raw, uncapped), "covariates": [], **earlier}
    spread = outcomes.get("covariate_var")  # CUPAC's variance among a cell's requests
    used = [c for c in COVARIATES if c in outcomes and outcomes[c].notna().all()
            and _varies_in_each_arm(outcomes[c], in_b, spread if c == "covariate" else None)]
    if not used:
        return raw, unadjusted
    x = outcomes[used[0]].astype(float) if len(used) == 1 else outcomes[used].to_numpy(dtype=float)
    within = spread if used[0] == "covariate" else None
    adjusted = inference.cluster_diff(right, in_b, units, x, strata=strata, weights=weights, counts=counts,
                                      within=within)
    reduction = 1 - (adjusted.se / raw.se) ** 2 if raw.se and adjusted.se == adjusted.se else math.nan
    names = [COVARIATES[c][0] for c in used]
    return adjusted, {**unadjusted, "applied": True, "covariate": " and ".join(names), "covariates": names,
                      "variance_reduction": reduction,
                      "statement": "regression-adjusted on " + " and ".join(COVARIATES[c][1] for c in used)}


def _varies_in_each_arm(x: pd.Series, in_b: pd.Series, within: pd.Series | None = None) -> bool:
    """Whether the covariate takes two values at least in each arm (between cells, or within one: `within`, its
    variance among a cell's requests): else its interaction with B is B itself."""
    spread = x.groupby(in_b).agg(["min", "max"]).reindex([False, True])
    varies = spread["max"] > spread["min"]
    if within is not None:
        varies |= (within > 0).groupby(in_b).any().reindex([False, True], fill_value=False)
    return bool(varies.all())


def _estimand(cap: int, capped: int, strata: int, uncapped_diff: float, earlier: bool) -> dict[str, Any]:
    """What the difference is a difference of, in one sentence for the console and the page."""
    if not cap:
        statement = "accuracy with every labelled request weighing the same (TICKET_AB_TEST_CUSTOMER_CAP=0)"
    else:
        statement = (f"accuracy with each customer weighing as at most {cap} labelled requests"
                     + (" plus its earlier labelled ones" if earlier else "") + " (TICKET_AB_TEST_CUSTOMER_CAP); " +
                     (f"{capped} customer{'s were' if capped > 1 else ' was'} capped (request-weighted B - A "
                      f"{pts(uncapped_diff)})" if capped else "no customer has more, so it is request-weighted"))
    if strata > 1:
        statement += f"; {strata} ramp steps pooled as strata (a fixed effect per step)"
    return {"customer_cap": cap, "capped_customers": capped, "statement": statement}


def _interval_name(th: ABSettings, seq: bool) -> str:
    level = f"{1 - 2 * th.alpha:.0%}"  # each end is a one-sided bound at alpha
    if seq:
        return (f"always-valid {level} confidence sequence over customers (valid at every look; tightest at "
                f"{th.horizon:,} labelled requests)")
    return f"fixed-horizon {level} interval over customers (valid for one look at a pre-registered size)"


def evidence(diff: inference.Estimate, th: ABSettings, seq: bool) -> dict[str, Any]:
    """How far the evidence for (or against) a gain of `min_gain` has come, and what it still needs."""
    z = (diff.value - th.min_gain) / diff.se if diff.se and not math.isnan(diff.se) else math.nan
    needed_z = sequential.multiplier(diff.n, th, seq)
    ratio = sequential.likelihood_ratio(z, diff.n, th) if seq else None
    total = sequential.labelled_needed(diff, th.min_gain, th, seq)
    more = max(0.0, total - diff.n) if not math.isnan(total) else math.nan
    side = "for" if z > 0 else "against"
    gain = pts(th.min_gain).lstrip("+")
    if math.isnan(z):
        statement = "no evidence yet: the difference or its customer-level standard error is undefined"
    elif seq:
        statement = (f"evidence {side} a gain of {gain}: likelihood ratio {likelihood_ratio(ratio)} of the "
                     f"{num(1 / th.alpha, 0)} needed (|z| = {abs(z):.2f} of {needed_z:.2f})")
    else:
        statement = f"evidence {side} a gain of {gain}: |z| = {abs(z):.2f} of the {needed_z:.2f} needed"
    if more > 0 and math.isfinite(more):
        statement += (f"; if the observed difference holds, about {num(more)} more labelled requests decide it "
                      f"with {th.power:.0%} power")
    elif math.isinf(more):
        statement += "; at the observed difference no sample size decides it"
    return {"z": z, "needed_z": needed_z, "likelihood_ratio": ratio, "needed_ratio": 1 / th.alpha if seq else None,
            "labelled_needed": total, "more_labelled": more, "statement": statement}


def _per_topic(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    topics = sorted(set(a["per_topic_accuracy"]) | set(b["per_topic_accuracy"]))
    empty = {"n": 0, "accuracy": math.nan}
    return [{"topic": t, "n_a": a["per_topic_accuracy"].get(t, empty)["n"],
             "accuracy_a": a["per_topic_accuracy"].get(t, empty)["accuracy"],
             "n_b": b["per_topic_accuracy"].get(t, empty)["n"],
             "accuracy_b": b["per_topic_accuracy"].get(t, empty)["accuracy"]} for t in topics]
