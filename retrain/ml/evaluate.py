"""Quality numbers for a fitted pipeline on labelled tickets: the gate, the CLI and the DAG agree.

Text is PII-masked first, as the router masks it before scoring, so offline numbers match serving.
The holdout those numbers come from is split here too, the same way for training and relabelling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from ticket_ab.pii import mask
from ticket_ab.schema import TEXT, TOPIC


def predict(model: Any, df: pd.DataFrame) -> np.ndarray:
    """`model`'s topics for `df`'s texts, masked as the router masks them (masking is idempotent)."""
    return np.asarray(model.predict(pd.DataFrame({TEXT: df[TEXT].map(mask)})), dtype=str)


def score(model: Any, df: pd.DataFrame) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-topic accuracy of `model` on `df` (which has `text` and `topic`)."""
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
    """Stratified when every topic can be split, plain random otherwise (rare topics in tiny data)."""
    counts = df[TOPIC].value_counts()
    stratify = df[TOPIC] if counts.min() >= 2 and len(df) * frac >= len(counts) else None
    train, holdout = train_test_split(df, test_size=frac, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)
