"""Offline scoring for backfills: a whole file of tickets through a registered pipeline, in chunks.

`ticket-ab predict` uses this to label historical tickets with the champion (or any alias or
version) without the router: the texts are masked as the router masks them, the pipeline's
`predict_proba` scores a chunk at a time (vectorised, so thousands of tickets per second), and a
tqdm bar shows progress on long files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ticket_ab.pii import mask
from ticket_ab.schema import TEXT

PREDICTED, CONFIDENCE = "predicted_topic", "confidence"


def predict_frame(model: Any, tickets: pd.DataFrame, chunk_rows: int = 4096, progress: bool = True) -> pd.DataFrame:
    """`tickets` with the predicted topic and its probability added (the input columns are kept)."""
    topics, confidence = [], []
    bar = tqdm(total=len(tickets), unit="ticket", disable=not progress, desc="scoring")
    for start in range(0, len(tickets), chunk_rows):
        chunk = tickets.iloc[start:start + chunk_rows]
        proba = model.predict_proba(pd.DataFrame({TEXT: chunk[TEXT].astype(str).map(mask)}))
        best = np.argmax(proba, axis=1)
        topics.append(np.asarray(model.classes_)[best].astype(str))
        confidence.append(proba[np.arange(len(best)), best])
        bar.update(len(chunk))
    bar.close()
    out = tickets.copy()
    out[PREDICTED] = np.concatenate(topics) if topics else np.array([], dtype=str)
    out[CONFIDENCE] = np.round(np.concatenate(confidence), 4) if confidence else np.array([], dtype=float)
    return out
