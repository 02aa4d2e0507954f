"""One arm of the analysed period: its quality by intention-to-treat, beside its traffic and latency.

The traffic comes from SQL (`analysis.traffic`); the quality from the analysed labelled requests, each
of which becomes one outcome row with its customer (where the router takes client tokens only
authenticated requests count, and customers served by both arms, crossover, are set aside before).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis import inference
from analysis.covariate import COLUMN
from ticket_ab.names import ARM_ALIAS, ARMS, SHADOW, SPLIT
from ticket_ab.settings import ABSettings


def counts(frame: pd.DataFrame) -> pd.Series:
    """The requests each row of `frame` stands for (its `count`; 1 where a frame has one row per request)."""
    return frame["count"] if "count" in frame else pd.Series(1, index=frame.index)


def _assigned(rows: pd.DataFrame, arm: str, mode: str) -> pd.DataFrame:
    """Arm `arm`'s labelled requests by intention-to-treat (cells of `analysis.traffic.cells`), with the `answer`
    they got ("" if none)."""
    labelled = rows[rows["label"].notna()]
    if mode == SPLIT:
        picked = labelled[labelled["variant"] == arm]
        return picked.assign(answer=picked["topic"])
    tried = labelled[(labelled["topic"] != "") & ((labelled["shadow_topic"] != "") | labelled["fallback"])]
    return tried.assign(answer=tried["topic"] if arm == "A" else tried["shadow_topic"])


def outcomes(rows: pd.DataFrame, mode: str) -> pd.DataFrame:
    """One row per cell of identical labelled requests of the comparison (`count` of them): its unit, arm, whether
    the answer was right, its ramp step (`stratum`) and, in split mode when it was scored, the champion's
    confidence (`covariate`, for CUPAC: each cell is then one request)."""
    if mode == SHADOW:
        a = _assigned(rows, "A", mode)
        return pd.DataFrame({"unit": a["unit"], "right_a": a["topic"] == a["label"],
                             "right_b": a["shadow_topic"] == a["label"], "count": counts(a)})
    both = pd.concat([_assigned(rows, arm, mode) for arm in ARMS])
    out = pd.DataFrame({"unit": both["unit"], "in_b": both["variant"] == "B", "right": both["answer"] == both["label"],
                        "count": counts(both)})
    if "period" in both:  # the ramp steps, which the comparison pools as strata
        out = out.assign(stratum=both["period"])
    return out.assign(covariate=both[COLUMN]) if COLUMN in both else out


def quality(labelled: pd.DataFrame, arm: str, mode: str, th: ABSettings, served: dict[str, Any]) -> dict[str, Any]:
    """One arm's summary: its traffic (`served`, from `analysis.traffic.arm`) and its quality by
    intention-to-treat on the labelled requests, with customer-level intervals."""
    rows = _assigned(labelled, arm, mode)
    right, weights = rows["answer"] == rows["label"], counts(rows)
    correct, n = int(weights[right].sum()), int(weights.sum())
    truth, answer, units = rows["label"], rows["answer"], rows["unit"]
    per_topic = {str(topic): {"n": int(counts(group).sum()),
                              "accuracy": ratio(int(counts(group)[group["answer"] == group["label"]].sum()),
                                                int(counts(group).sum()))}
                 for topic, group in rows.groupby("label", sort=True, observed=True)}
    return {
        "alias": ARM_ALIAS[arm], **{k: served[k] for k in ("versions", "requests", "share", "customers", "answered",
                                                           "fallbacks", "errors")},
        "labelled": n,
        "labelled_customers": int(units.nunique()),
        "correct": correct,
        "accuracy": ratio(correct, n),
        "accuracy_ci": list(inference.proportion_interval(right, units, 1 - th.alpha, counts=weights)),
        "macro_f1": inference.macro_f1(truth, answer, counts=weights),
        "macro_f1_ci": list(inference.macro_f1_interval(truth, answer, units, 1 - th.alpha, th.resamples,
                                                        counts=weights)),
        "latency_ms": served["latency_ms"],
        "topic_mix": served["topic_mix"],
        "per_topic_accuracy": per_topic,
    }


def mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def ratio(k: int, n: int) -> float:
    return k / n if n else math.nan
