"""Quality numbers for a fitted pipeline on labelled tickets: the gate, the CLI and the DAG agree.

Text is PII-masked first, as the router masks it before scoring, so offline numbers match serving.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from retrain.contracts.pii import mask
from retrain.contracts.schema import TEXT, TOPIC


def score(model: Any, df: pd.DataFrame) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-topic accuracy of `model` on `df` (which has `text` and `topic`)."""
    y_true = df[TOPIC].astype(str).to_numpy()
    y_pred = model.predict(pd.DataFrame({TEXT: df[TEXT].map(mask)}))
    hits = pd.Series(y_true == y_pred, index=df.index)
    per_topic = {str(t): float(hits[df[TOPIC] == t].mean()) for t in sorted(df[TOPIC].unique())}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "n": int(len(df)),
        "per_topic_accuracy": per_topic,
    }
