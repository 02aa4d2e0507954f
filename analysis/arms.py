"""One arm of the analysed period: its quality by intention-to-treat, beside its traffic and latency.

The traffic comes from SQL (`analysis.traffic`); the quality from the analysed labelled requests, as cells of
alike requests of one customer (where the router takes client tokens only authenticated requests count, and
customers served by both arms, crossover, are set aside before), which `outcomes` turns into outcome rows and
`pooled` merges per customer, arm, step and result.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis import inference
from analysis.covariate import COLUMN, VARIANCE
from ticket_ab.names import ARM_ALIAS, ARMS, SHADOW, SPLIT
from ticket_ab.settings import ABSettings


def counts(frame: pd.DataFrame) -> pd.Series:
    """The requests each row of `frame` stands for (its `count`; 1 where a frame has one row per request)."""
    return frame["count"] if "count" in frame else pd.Series(1, index=frame.index)


def _assigned(rows: pd.DataFrame, arm: str, mode: str) -> tuple[pd.DataFrame, pd.Series]:
    """Arm `arm`'s labelled requests by intention-to-treat (cells of `analysis.traffic.cells`), and the answer each
    got ("" if none). Cells are copied once, not per column added: a 10M window has 1.5M of them."""
    labelled = rows if rows["label"].notna().all() else rows[rows["label"].notna()]
    if mode == SPLIT:
        picked = labelled[labelled["variant"] == arm]
        return picked, picked["topic"]
    tried = labelled[(labelled["topic"] != "") & ((labelled["shadow_topic"] != "") | labelled["fallback"])]
    return tried, tried["topic"] if arm == "A" else tried["shadow_topic"]


def outcomes(rows: pd.DataFrame, mode: str) -> pd.DataFrame:
    """One row per cell of identical labelled requests of the comparison (`count` of them): its unit, arm, whether
    the answer was right, its ramp step (`stratum`) and, in split mode when it was logged or scored, the champion's
    confidence (`covariate`, for CUPAC: the cell's mean, with `covariate_var` its variance among the requests)."""
    if mode == SHADOW:
        a, _ = _assigned(rows, "A", mode)
        return pd.DataFrame({"unit": a["unit"], "right_a": a["topic"] == a["label"],
                             "right_b": a["shadow_topic"] == a["label"], "count": counts(a)})
    kept = rows["label"].notna() & rows["variant"].isin(ARMS)  # each arm's labelled requests, as `_assigned` picks
    both = rows if kept.all() else rows[kept]  # no copy of a million cells when every one counts
    out = pd.DataFrame({"unit": both["unit"], "in_b": both["variant"] == "B", "right": both["topic"] == both["label"],
                        "count": counts(both)})
    if "period" in both:  # the ramp steps, which the comparison pools as strata
        out = out.assign(stratum=both["period"])
    if COLUMN not in both:
        return out
    spread = both[VARIANCE] if VARIANCE in both else 0.0  # one value a cell unless said
    return out.assign(covariate=both[COLUMN], covariate_var=spread)


def pooled(out: pd.DataFrame) -> pd.DataFrame:
    """`outcomes` merged into one row per customer, arm, step and result: what the statistics need, about 415,000
    rows where a 10M window's cells are 1.5M. The covariate's mean and its variance among a row's requests are pooled
    exactly (the variance about the pooled mean, so alike values pool to exactly 0), so every estimate is unchanged;
    a covariate missing anywhere is dropped (the comparison would not use it). Sums by bincount: a groupby would copy
    the cells several times over."""
    keys = [c for c in ("unit", "in_b", "stratum", "right", "right_a", "right_b") if c in out]
    ids, first = _group_ids(out, keys)
    groups = len(first)
    n = counts(out).to_numpy(dtype=float)
    merged = out[keys].iloc[first].reset_index(drop=True)
    total = np.bincount(ids, weights=n, minlength=groups)
    merged["count"] = total.astype(np.int64)
    if "covariate" in out and out["covariate"].notna().all():
        x, spread = out["covariate"].to_numpy(dtype=float), out["covariate_var"].to_numpy(dtype=float)
        mean = np.bincount(ids, weights=n * x, minlength=groups) / total
        apart = n * (spread + (x - mean[ids]) ** 2)
        merged["covariate"], merged["covariate_var"] = mean, np.bincount(ids, weights=apart, minlength=groups) / total
    return merged


def _group_ids(frame: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's combination of `keys` as 0..g-1, and each group's first row; a missing value is a value of its own.
    The key is re-numbered after each column, so any number of columns fits in 64 bits."""
    combined, size = np.zeros(len(frame), dtype=np.int64), 1
    for key in keys:
        column = frame[key]
        codes = column.cat.codes.to_numpy() if isinstance(column.dtype, pd.CategoricalDtype) else pd.factorize(
            column)[0]
        codes = codes.astype(np.int64) + 1
        width = int(codes.max()) + 1 if len(codes) else 1
        if size * width >= 2**62:  # renumber the combinations so far before they outgrow 64 bits
            combined = pd.factorize(combined)[0].astype(np.int64)
            size = int(combined.max()) + 1
        combined, size = combined * width + codes, size * width
    ids = pd.factorize(combined)[0]  # numbered in order of first appearance: a new number is a group's first row
    return ids, np.flatnonzero(np.diff(np.maximum.accumulate(ids), prepend=-1) > 0)


def quality(labelled: pd.DataFrame, arm: str, mode: str, th: ABSettings, served: dict[str, Any]) -> dict[str, Any]:
    """One arm's summary: its traffic (`served`, from `analysis.traffic.arm`) and its quality by
    intention-to-treat on the labelled requests, with customer-level intervals."""
    rows, answer = _assigned(labelled, arm, mode)
    right, weights = answer == rows["label"], counts(rows)
    correct, n = int(weights[right].sum()), int(weights.sum())
    truth, units = rows["label"], rows["unit"]
    by_topic = pd.DataFrame({"n": weights, "correct": weights.where(right, 0)}).groupby(truth, observed=True).sum()
    per_topic = {str(topic): {"n": int(size), "accuracy": ratio(int(hits), int(size))}
                 for topic, size, hits in zip(by_topic.index, by_topic["n"], by_topic["correct"], strict=True)}
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
