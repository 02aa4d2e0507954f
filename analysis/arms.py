"""One arm of the analysed period: its traffic, its quality by intention-to-treat, its latency.

Also the row selections every customer-level number starts from: where the router takes client tokens
only authenticated requests count, customers served by both arms (crossover) are set aside, and each
labelled request becomes one outcome row with its customer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis import inference
from analysis.covariate import COLUMN
from ticket_ab.names import ARM_ALIAS, ARMS, SHADOW, SPLIT
from ticket_ab.requestlog import ANONYMOUS
from ticket_ab.settings import ABSettings


def answered_by(rows: pd.DataFrame, arm: str, mode: str) -> pd.DataFrame:
    """The rows arm `arm`'s model answered, with its `answer` (topic) and model `version` spelled out."""
    if mode == SHADOW:
        if arm == "A":
            picked = rows[rows["topic"] != ""]
            return picked.assign(answer=picked["topic"], version=picked["model_version"])
        picked = rows[rows["shadow_topic"] != ""]
        return picked.assign(answer=picked["shadow_topic"], version=picked["shadow_version"])
    picked = rows[(rows["variant"] == arm) & (rows["topic"] != "") & (rows["fallback"] == "")]
    return picked.assign(answer=picked["topic"], version=picked["model_version"])


def authenticated_only(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The requests that carried a client token, and how many did not, once any did (credentials on).

    An anonymous client can learn its arm from the answer and pick its customers, so where the router
    takes client tokens anonymous traffic (TICKET_AB_ALLOW_ANONYMOUS) is served but not counted. With
    no authenticated request at all (an open router, or logs from before the column) every row counts.
    """
    anonymous = rows["integration"] == ANONYMOUS
    if anonymous.all():
        return rows, 0
    return rows[~anonymous], int(anonymous.sum())


def without_crossover(rows: pd.DataFrame, within: str | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of units served by one arm only (within each value of column `within`, e.g. each ramp step,
    where a customer joining B at a later step is no crossover), and how many units (and requests) were in both."""
    if rows.empty or (rows["mode"] == SHADOW).all():
        return rows, {"customers": 0, "requests": 0}
    keys = [within, "unit"] if within else ["unit"]
    arms_seen = rows[rows["variant"].isin(ARMS)].groupby(keys)["variant"].nunique()
    crossed = arms_seen.index[arms_seen > 1]
    both = (pd.MultiIndex.from_frame(rows[keys]).isin(crossed) if within else rows["unit"].isin(crossed))
    units = crossed.get_level_values("unit").nunique() if within else len(crossed)
    return rows[~both], {"customers": int(units), "requests": int(both.sum())}


def _assigned(rows: pd.DataFrame, arm: str, mode: str) -> pd.DataFrame:
    """Arm `arm`'s labelled requests by intention-to-treat, with the `answer` they got ("" if none)."""
    labelled = rows[rows["label"].notna()]
    if mode == SPLIT:
        picked = labelled[labelled["variant"] == arm]
        return picked.assign(answer=picked["topic"])
    tried = labelled[(labelled["topic"] != "") & ((labelled["shadow_topic"] != "") | (labelled["fallback"] != ""))]
    return tried.assign(answer=tried["topic"] if arm == "A" else tried["shadow_topic"])


def outcomes(rows: pd.DataFrame, mode: str) -> pd.DataFrame:
    """One row per labelled request of the comparison: its unit, arm, whether the answer was right, its ramp
    step (`stratum`) and, in split mode when it was scored, the champion's confidence (`covariate`, for CUPAC)."""
    if mode == SHADOW:
        a = _assigned(rows, "A", mode)
        return pd.DataFrame({"unit": a["unit"], "right_a": a["topic"] == a["label"],
                             "right_b": a["shadow_topic"] == a["label"]})
    both = pd.concat([_assigned(rows, arm, mode) for arm in ARMS])
    out = pd.DataFrame({"unit": both["unit"], "in_b": both["variant"] == "B", "right": both["answer"] == both["label"]})
    if "period" in both:  # the ramp steps, which the comparison pools as strata
        out = out.assign(stratum=both["period"])
    return out.assign(covariate=both[COLUMN]) if COLUMN in both else out


def summarize(rows: pd.DataFrame, arm: str, mode: str, th: ABSettings) -> dict[str, Any]:
    """Traffic, quality (intention-to-treat, customer-level intervals) and latency of one arm."""
    assigned = rows if mode == SHADOW else rows[rows["variant"] == arm]
    answers = answered_by(rows, arm, mode)
    labelled = _assigned(rows, arm, mode)
    right = labelled["answer"] == labelled["label"]
    correct, n = int(right.sum()), int(len(labelled))
    truth, answer, units = labelled["label"].tolist(), labelled["answer"].tolist(), labelled["unit"].tolist()
    latency = assigned["latency_ms"].dropna() if not (mode == SHADOW and arm == "B") else pd.Series(dtype=float)
    per_topic = {str(topic): {"n": int(len(group)), "accuracy": mean(group["answer"] == group["label"])}
                 for topic, group in labelled.groupby("label")}
    return {
        "alias": ARM_ALIAS[arm],
        "versions": sorted(v for v in answers["version"].unique() if v),
        "requests": int(len(assigned)),
        "share": ratio(len(assigned), len(rows)) if mode == SPLIT else None,
        "customers": int(assigned["unit"].nunique()),
        "answered": int(len(answers)),
        "fallbacks": 0 if mode == SHADOW and arm == "A" else int((assigned["fallback"] != "").sum()),
        "errors": int((assigned["topic"] == "").sum()),
        "labelled": n,
        "labelled_customers": int(labelled["unit"].nunique()),
        "correct": correct,
        "accuracy": ratio(correct, n),
        "accuracy_ci": list(inference.proportion_interval(right, units, 1 - th.alpha)),
        "macro_f1": inference.macro_f1(truth, answer),
        "macro_f1_ci": list(inference.macro_f1_interval(truth, answer, units, 1 - th.alpha, th.resamples)),
        "latency_ms": {f"p{q}": quantile(latency, q / 100) for q in (50, 95, 99)},
        "topic_mix": {str(k): float(v) for k, v in answers["answer"].value_counts(normalize=True).sort_index().items()},
        "per_topic_accuracy": per_topic,
    }


def mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def ratio(k: int, n: int) -> float:
    return k / n if n else math.nan


def quantile(values: pd.Series, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else math.nan
