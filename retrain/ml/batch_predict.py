"""Offline scoring for backfills: a whole file of tickets through a registered pipeline, in chunks.

`ticket-ab predict` uses this to label historical tickets with the champion (or any alias or
version) without the router: the texts are masked as the router masks them, the pipeline's
`predict_proba` scores a chunk at a time (vectorised, so thousands of tickets per second), and a
tqdm bar shows progress on long files. A two-head version (ticket_ab.twohead) also fills
`predicted_priority` and `priority_confidence` from the same features (`predict_both`, its urgent
threshold applied as the router applies it); a one-head version leaves them blank.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ticket_ab.pii import mask
from ticket_ab.schema import TEXT
from ticket_ab.twohead import decide_priority, probabilities

PREDICTED, CONFIDENCE = "predicted_topic", "confidence"
PREDICTED_PRIORITY, PRIORITY_CONFIDENCE = "predicted_priority", "priority_confidence"


def _chosen(proba: np.ndarray, classes: tuple[str, ...], picked: np.ndarray) -> np.ndarray:
    """Each row's probability of the class it was given (with an urgent threshold not always the likeliest)."""
    column = {name: i for i, name in enumerate(classes)}
    return proba[np.arange(len(picked)), [column[name] for name in picked]]


def predict_frame(model: Any, tickets: pd.DataFrame, chunk_rows: int = 4096, progress: bool = True) -> pd.DataFrame:
    """`tickets` with the predicted topic and its probability added (the input columns are kept), and the predicted
    priority and its probability (blank for a one-head version, which predicts topic only)."""
    topics, confidence, priorities, priority_confidence = [], [], [], []
    bar = tqdm(total=len(tickets), unit="ticket", disable=not progress, desc="scoring")
    for start in range(0, len(tickets), chunk_rows):
        chunk = tickets.iloc[start:start + chunk_rows]
        proba, chances = probabilities(model, pd.DataFrame({TEXT: chunk[TEXT].astype(str).map(mask)}))
        best = np.argmax(proba, axis=1)
        topics.append(np.asarray(model.classes_)[best].astype(str))
        confidence.append(proba[np.arange(len(best)), best])
        if chances is not None:
            picked = decide_priority(chances, model.priority_classes_, model.urgent_threshold)
            priorities.append(picked.astype(object))
            priority_confidence.append(_chosen(chances, model.priority_classes_, picked))
        bar.update(len(chunk))
    bar.close()
    out = tickets.copy()
    out[PREDICTED] = np.concatenate(topics) if topics else np.array([], dtype=str)
    out[CONFIDENCE] = np.round(np.concatenate(confidence), 4) if confidence else np.array([], dtype=float)
    out[PREDICTED_PRIORITY] = np.concatenate(priorities) if priorities else np.full(len(out), None, dtype=object)
    out[PRIORITY_CONFIDENCE] = (np.round(np.concatenate(priority_confidence), 4) if priority_confidence
                                else np.full(len(out), np.nan))
    return out
