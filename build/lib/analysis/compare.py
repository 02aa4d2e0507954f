"""B against A on the analysed period: the accuracy test, its power statement, accuracy per topic.

Split mode compares two independent samples (z-test); shadow mode has both models answer the same
tickets, so the comparison is paired (McNemar) and only the tickets they disagree on count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from analysis.fmt import num, pts
from analysis.verdict import Thresholds
from retrain.contracts.names import SHADOW
from retrain.ml import stats


def compare(rows: pd.DataFrame, mode: str, arms: dict[str, Any], th: Thresholds) -> dict[str, Any]:
    """B - A accuracy: paired McNemar in shadow mode, independent z-test in split mode; with power."""
    a, b = arms["A"], arms["B"]
    if mode == SHADOW:
        both = rows[rows["label"].notna() & (rows["topic"] != "") & (rows["shadow_topic"] != "")]
        right_a = both["topic"] == both["label"]
        right_b = both["shadow_topic"] == both["label"]
        only_a, only_b, n = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum()), int(len(both))
        diff, low, high = stats.paired_difference(only_a, only_b, n)
        test = stats.mcnemar(only_a, only_b)
        discordant = (only_a + only_b) / n if n else math.nan
        power = _power(n, n, diff, th,
                       needed=lambda d: stats.paired_sample_size(discordant, d, th.alpha, th.power),
                       mde=stats.paired_mde(discordant, n, th.alpha, th.power))
        return {"kind": "paired", "test": f"McNemar ({test.method})", "n_a": n, "n_b": n, "diff": diff,
                "ci_low": low, "ci_high": high, "z": None, "p_value": test.p_value,
                "mcnemar": {"only_a_right": only_a, "only_b_right": only_b, "statistic": test.statistic,
                            "p_value": test.p_value, "method": test.method, "pairs": n},
                "power": power, "per_topic": _per_topic(a, b)}
    result = stats.two_proportion_test(a["correct"], a["labelled"], b["correct"], b["labelled"])
    p_a = a["accuracy"]
    power = _power(a["labelled"], b["labelled"], result.diff, th,
                   needed=lambda d: stats.sample_size_per_arm(p_a, min(1.0, p_a + d), th.alpha, th.power),
                   mde=stats.minimum_detectable_effect(p_a, min(a["labelled"], b["labelled"]), th.alpha, th.power))
    return {"kind": "independent", "test": "two-proportion z-test", "n_a": a["labelled"], "n_b": b["labelled"],
            "diff": result.diff, "ci_low": result.ci_low, "ci_high": result.ci_high, "z": result.z,
            "p_value": result.p_value, "mcnemar": None, "power": power, "per_topic": _per_topic(a, b)}


def _power(n_a: int, n_b: int, diff: float, th: Thresholds, *, needed: Callable[[float], float],
           mde: float) -> dict[str, Any]:
    """Labelled requests per arm needed for the observed effect and for `min_gain`; the MDE now."""
    if math.isnan(diff):
        observed = min_gain = math.nan
    else:
        observed = needed(abs(diff)) if diff != 0 else math.inf
        min_gain = needed(th.min_gain)
    have = min(n_a, n_b)
    if math.isfinite(observed):
        first = (f"detecting the observed difference ({pts(diff)}) with {th.power:.0%} power at alpha "
                 f"{th.alpha} takes {num(observed)} labelled requests per arm")
    else:
        first = "the observed difference is zero or undefined, so no sample size detects it"
    second = (f"with {have} per arm the minimum detectable effect is {pts(mde).lstrip('+')}" if not math.isnan(mde)
              else f"with {have} per arm no effect can be detected reliably yet")
    return {"alpha": th.alpha, "power": th.power, "n_per_arm": have, "needed_observed": observed,
            "needed_min_gain": min_gain, "mde": mde, "statement": f"{first}; {second}"}


def _per_topic(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    topics = sorted(set(a["per_topic_accuracy"]) | set(b["per_topic_accuracy"]))
    empty = {"n": 0, "accuracy": math.nan}
    return [{"topic": t, "n_a": a["per_topic_accuracy"].get(t, empty)["n"],
             "accuracy_a": a["per_topic_accuracy"].get(t, empty)["accuracy"],
             "n_b": b["per_topic_accuracy"].get(t, empty)["n"],
             "accuracy_b": b["per_topic_accuracy"].get(t, empty)["accuracy"]} for t in topics]
