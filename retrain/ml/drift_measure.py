"""The drift signals of a window, measured with Evidently against the champion's training reference.

`measure` runs one Evidently report over the columns and the descriptors of `retrain.ml.descriptors`
(length, script, words unknown to the reference) and reads the signals off it, with the two
significance tests Evidently lacks (`retrain.ml.drift`: the domain classifier's AUC, two topic
mixes). What the signals mean for retraining is `retrain.ml.drift.decide`'s job.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from sklearn.exceptions import ConvergenceWarning

from retrain.ml.descriptors import (
    LANGUAGE,
    LENGTH,
    OOV,
    RAW,
    CrossFitted,
    normalize_text,
    ticket_descriptors,
    token_weighted,
)
from retrain.ml.drift import DriftSignals, auc_p_value, topic_counts_test
from ticket_ab.schema import TEXT
from ticket_ab.settings import DriftSettings

# Evidently's domain classifier, reporting its ROC AUC. Its `perc_text_content_drift` variant compares
# the AUC with the 95th percentile of 1000 random classifiers' AUCs (8 of its 9 s on 20k vs 20k
# tickets); that null distribution has a closed form (Mann-Whitney), `auc_p_value`.
TEXT_METHOD = "abs_text_content_drift"
PREDICTION_METHOD = "jensenshannon"
PREDICTED = "predicted"
PREDICTED_PRIORITY = "predicted_priority"  # the reference's column, when the champion has a priority head


# ---- the Evidently report ----------------------------------------------------------------------

@dataclass
class Measurement:
    signals: DriftSignals
    snapshot: Any  # evidently Snapshot: .get_html_str(), .dict()
    seconds: float
    thresholds: DriftSettings = field(default_factory=DriftSettings)


def measure(
    window_texts: pd.Series,
    window_predicted: pd.Series,
    reference: pd.DataFrame,
    *,
    labels: pd.Series | None = None,
    reference_accuracy: float | None = None,
    reference_labelled: int | None = None,
    thresholds: DriftSettings | None = None,
    seed: int = 0,
    window_priority: pd.Series | None = None,
) -> Measurement:
    """Run the Evidently report of the window against the reference and read the signals off it.

    `reference` has `text` and `predicted` (the champion's predictions on its training sample) and, from a
    two-head champion, `predicted_priority`; `window_priority` (aligned with `window_texts`) is the champion's
    predicted priority on the window (None: it has no priority head). `labels` (aligned with `window_texts`,
    NaN where unlabelled) are the window's gold labels.
    """
    started = time.perf_counter()
    thresholds = thresholds or DriftSettings()
    window_texts = window_texts.reset_index(drop=True)
    window_predicted = window_predicted.reset_index(drop=True)
    priorities = window_priority is not None and PREDICTED_PRIORITY in reference
    ref_frame = _frame(reference[TEXT].reset_index(drop=True), reference[PREDICTED],
                       reference[PREDICTED_PRIORITY].reset_index(drop=True) if priorities else None)
    win_frame = _frame(window_texts, window_predicted, window_priority.reset_index(drop=True) if priorities else None)
    vocabulary = CrossFitted(ref_frame[TEXT], seed)
    ref_data = _dataset(ref_frame, ticket_descriptors(vocabulary, reference=True))
    win_data = _dataset(win_frame, ticket_descriptors(vocabulary, reference=False))
    snapshot = run_report(ref_data, win_data, thresholds, priorities)
    values = _values(snapshot)
    ref_rows, win_rows = ref_data.as_dataframe(), win_data.as_dataframe()
    text_auc = values.get((TEXT, TEXT_METHOD))
    js, chi_p = topic_counts_test(ref_frame[PREDICTED], win_frame[PREDICTED])
    priority_js, priority_p = (topic_counts_test(ref_frame[PREDICTED_PRIORITY], win_frame[PREDICTED_PRIORITY])
                               if priorities else (None, None))
    labelled, accuracy = label_accuracy(window_predicted, labels)
    signals = DriftSignals(
        window_rows=len(win_frame),
        reference_rows=len(ref_frame),
        text_auc=text_auc,
        text_p=auc_p_value(text_auc, len(ref_frame), len(win_frame)) if text_auc is not None else None,
        oov_reference=token_weighted(ref_rows[OOV].to_numpy(), ref_rows[TEXT]),
        oov_window=token_weighted(win_rows[OOV].to_numpy(), win_rows[TEXT]),
        ru_reference=float(np.mean(ref_rows[LANGUAGE] == "ru")),
        ru_window=float(np.mean(win_rows[LANGUAGE] == "ru")),
        length_reference=float(reference[TEXT].astype(str).str.len().median()),
        length_window=float(window_texts.astype(str).str.len().median()),
        length_drift=values.get((LENGTH, None)),
        prediction_js=values.get((PREDICTED, PREDICTION_METHOD), js),
        prediction_p=chi_p,
        priority_js=values.get((PREDICTED_PRIORITY, PREDICTION_METHOD), priority_js),
        priority_p=priority_p,
        labelled=labelled,
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        reference_labelled=reference_labelled,
    )
    return Measurement(signals, snapshot, time.perf_counter() - started, thresholds)


def _frame(texts: pd.Series, predicted: pd.Series, priority: pd.Series | None = None) -> pd.DataFrame:
    """The columns Evidently starts from: normalized text, the raw text (for its script), predicted topic (and
    predicted priority, when both sides have one)."""
    frame = pd.DataFrame({TEXT: normalize_text(texts).to_numpy(), RAW: texts.fillna("").astype(str).to_numpy(),
                          PREDICTED: predicted.astype(str).to_numpy()})
    return frame if priority is None else frame.assign(**{PREDICTED_PRIORITY: priority.astype(str).to_numpy()})


def _dataset(frame: pd.DataFrame, descriptors: list) -> Dataset:
    categorical = [c for c in (PREDICTED, PREDICTED_PRIORITY) if c in frame]
    definition = DataDefinition(text_columns=[TEXT, RAW], categorical_columns=categorical)
    return Dataset.from_pandas(frame, data_definition=definition, descriptors=descriptors)


def run_report(reference: Dataset, window: Dataset, thresholds: DriftSettings, priorities: bool = False) -> Any:
    """Evidently's drift methods over the columns and descriptors: the evidence behind the signals.

    The text signal is Evidently's domain classifier (`abs_text_content_drift`, its ROC AUC), the
    predicted-topic signal its Jensen-Shannon distance; language, OOV share and length are shown
    with Evidently's default method for their type (informational). Evidently has no p-value for
    the classifier's AUC nor a two-sample test of two topic mixes: `auc_p_value` and
    `topic_counts_test` add them. With `priorities`, the predicted-priority mix is measured as the topic mix is.
    """
    mixes = (PREDICTED, PREDICTED_PRIORITY) if priorities else (PREDICTED,)
    report = Report([
        ValueDrift(column=TEXT, method=TEXT_METHOD, threshold=thresholds.text_min_auc),
        *(ValueDrift(column=mix, method=PREDICTION_METHOD, threshold=thresholds.prediction_js) for mix in mixes),
        ValueDrift(column=LANGUAGE),
        ValueDrift(column=OOV),
        ValueDrift(column=LENGTH),
    ], include_tests=False)
    with warnings.catch_warnings():  # Evidently's domain classifier stops at max_iter=50 by design
        warnings.simplefilter("ignore", ConvergenceWarning)
        return report.run(window, reference)


def label_accuracy(predicted: pd.Series, labels: pd.Series | None) -> tuple[int, float | None]:
    """(labelled tickets, the champion's accuracy on them; None without labels)."""
    if labels is None:
        return 0, None
    labels = labels.reset_index(drop=True)
    known = labels.notna() & labels.astype(str).str.strip().ne("")
    if not known.any():
        return 0, None
    hits = predicted[known].astype(str).to_numpy() == labels[known].astype(str).to_numpy()
    return int(known.sum()), float(hits.mean())


def _values(snapshot: Any) -> dict[tuple[str, str | None], float]:
    """ValueDrift results keyed by (column, method as requested; None when Evidently chose it)."""
    out: dict[tuple[str, str | None], float] = {}
    for metric in snapshot.dict().get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        value = metric.get("value")
        if isinstance(value, int | float) and not math.isnan(value):
            column = config.get("column")
            requested = config.get("method") if config.get("method") in (TEXT_METHOD, PREDICTION_METHOD) else None
            out[(column, requested)] = float(value)
    return out
