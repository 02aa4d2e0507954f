"""Quality numbers for a fitted pipeline on labelled tickets: the gate, the CLI and the DAG agree.

Text is PII-masked first, as the router masks it before scoring, so offline numbers match serving.
The holdout those numbers come from is split here too, the same way for training and relabelling.
A ticket may carry a topic, a priority or both (priority-only feedback): the topic is scored on the
tickets with a topic, the priority (`retrain.ml.priority`) on those with a priority.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from retrain.ml.priority import PriorityScores, priority_scores
from ticket_ab.pii import mask
from ticket_ab.schema import PRIORITY, TEXT, TOPIC, is_known
from ticket_ab.twohead import PRIORITY_HEAD, heads_of

NO_TOPIC = "(no topic)"  # the stratum of the holdout split that priority-only tickets fall in


def labelled(frame: pd.DataFrame, column: str) -> pd.Series:
    """The rows whose `column` is known (present, not NaN, not blank)."""
    if column not in frame:
        return pd.Series(False, index=frame.index)
    return is_known(frame[column])


def with_topic(df: pd.DataFrame) -> pd.DataFrame:
    """The tickets that have a topic (the others carry only a priority)."""
    return df[labelled(df, TOPIC)]


def with_priority(df: pd.DataFrame) -> pd.DataFrame:
    """The tickets that have a priority."""
    return df[labelled(df, PRIORITY)]


def predict(model: Any, df: pd.DataFrame) -> np.ndarray:
    """`model`'s topics for `df`'s texts, masked as the router masks them (masking is idempotent)."""
    return np.asarray(model.predict(pd.DataFrame({TEXT: df[TEXT].map(mask)})), dtype=str)


def predict_priority(model: Any, df: pd.DataFrame) -> np.ndarray | None:
    """`model`'s priorities for `df`'s texts, masked (None: the model has no priority head)."""
    if PRIORITY_HEAD not in heads_of(model):
        return None
    if df.empty:  # a holdout without priorities (scikit-learn refuses to vectorize no rows)
        return np.array([], dtype=str)
    return np.asarray(model.predict_priority(pd.DataFrame({TEXT: df[TEXT].map(mask)})), dtype=str)


def priority_score(model: Any, df: pd.DataFrame) -> PriorityScores | None:
    """The priority figures of `model` on `df`'s tickets with a priority (None: the model has no priority head)."""
    rows = with_priority(df)
    predicted = predict_priority(model, rows)
    if predicted is None:
        return None
    return priority_scores(rows[PRIORITY].astype(str).str.strip().to_numpy(), predicted)


def score(model: Any, df: pd.DataFrame) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-topic accuracy of `model` on `df`'s tickets with a topic."""
    df = with_topic(df)
    y_true = df[TOPIC].astype(str).to_numpy()
    y_pred = predict(model, df)
    hits = pd.Series(y_true == y_pred, index=df.index)
    per_topic = {str(t): float(hits[df[TOPIC] == t].mean()) for t in sorted(df[TOPIC].unique())}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "n": int(len(df)),
        "per_topic_accuracy": per_topic,
    }


def split_holdout(df: pd.DataFrame, frac: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified when every topic can be split, plain random otherwise (rare topics in tiny data).

    Tickets without a topic (priority-only) are one more stratum, so both sides get their share."""
    strata = df[TOPIC].where(labelled(df, TOPIC), NO_TOPIC).astype(str)
    counts = strata.value_counts()
    stratify = strata if counts.min() >= 2 and len(df) * frac >= len(counts) else None
    train, holdout = train_test_split(df, test_size=frac, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)
