"""B against A on the analysed period: the customer-level accuracy comparison, its evidence, per topic.

Split mode compares two groups of customers: the difference of two ratio-of-sums accuracies with
its cluster-robust standard error. Shadow mode has both models answer the same tickets, so the
comparison is paired: the mean per-ticket difference (B right - A right), again clustered by
customer; McNemar's test (statsmodels) on the discordant tickets is shown beside it for reference.
Either way the interval is the always-valid one by default (`analysis.sequential`).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis import inference, sequential
from analysis.fmt import num, pts
from retrain.ml import stats
from ticket_ab.names import SHADOW
from ticket_ab.settings import ABSettings


def compare(outcomes: pd.DataFrame, mode: str, arms: dict[str, Any] | None, th: ABSettings,
            seq: bool) -> dict[str, Any]:
    """B - A accuracy on `outcomes` (one row per labelled request: `unit`, `in_b`, `right`, and in shadow
    mode `right_a`/`right_b`), with its interval, evidence and the labelled requests still needed; per
    topic too when the `arms` (their summaries) are given."""
    if mode == SHADOW:
        diff = inference.cluster_mean(outcomes["right_b"].astype(float) - outcomes["right_a"].astype(float),
                                      outcomes["unit"])
        only_a = int((outcomes["right_a"] & ~outcomes["right_b"]).sum())
        only_b = int((~outcomes["right_a"] & outcomes["right_b"]).sum())
        test = stats.mcnemar(only_a, only_b)
        mcnemar = {"only_a_right": only_a, "only_b_right": only_b, "statistic": test.statistic,
                   "p_value": test.p_value, "method": test.method, "pairs": int(len(outcomes))}
        kind, name, n_a = "paired", "paired difference, customer-clustered", int(len(outcomes))
        n_b = n_a
        adjustment = None
    else:
        diff, adjustment = _split_diff(outcomes)
        mcnemar, kind, name = None, "independent", "difference of ratio-of-sums accuracies, customer-clustered"
        if adjustment["applied"]:
            name += ", regression-adjusted on the champion's confidence (CUPAC)"
        n_a, n_b = int((~outcomes["in_b"]).sum()), int(outcomes["in_b"].sum())
    low, high = sequential.interval(diff, th, seq)
    return {"kind": kind, "test": name, "interval": _interval_name(th, seq), "sequential": seq,
            "n_a": n_a, "n_b": n_b, "units": diff.units, "diff": diff.value, "se": diff.se,
            "ci_low": low, "ci_high": high, "mcnemar": mcnemar, "evidence": evidence(diff, th, seq),
            "adjustment": adjustment, "per_topic": _per_topic(arms["A"], arms["B"]) if arms else []}


def _split_diff(outcomes: pd.DataFrame) -> tuple[inference.Estimate, dict[str, Any]]:
    """B - A, adjusted on the `covariate` column (the champion's confidence, scored offline on every
    labelled ticket of both arms) when it is there for every row; the share of variance it removed
    is reported, so a reader sees what the adjustment bought."""
    right, in_b, units = outcomes["right"].astype(float), outcomes["in_b"], outcomes["unit"]
    raw = inference.cluster_diff(right, in_b, units)
    covariate = outcomes["covariate"] if "covariate" in outcomes else None
    if covariate is None or covariate.isna().any() or not len(covariate):
        return raw, {"applied": False, "covariate": None, "variance_reduction": math.nan, "unadjusted_diff": raw.value,
                     "unadjusted_se": raw.se}
    adjusted = inference.cluster_diff(right, in_b, units, covariate.astype(float))
    reduction = 1 - (adjusted.se / raw.se) ** 2 if raw.se and adjusted.se == adjusted.se else math.nan
    return adjusted, {"applied": True, "covariate": "champion confidence", "variance_reduction": reduction,
                      "unadjusted_diff": raw.value, "unadjusted_se": raw.se}


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
        statement = (f"evidence {side} a gain of {gain}: likelihood ratio {num(ratio, 1)} of the "
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
