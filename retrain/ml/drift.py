"""Has the traffic moved away from what the champion learned? Evidently measures, `decide` judges.

The window is compared with the champion's training reference (stored with its model version) on
five signals: text drift (Evidently's domain classifier), the share of words the reference never
used, the share of Russian tickets, the distribution of the champion's predicted topics and, where
feedback exists, the champion's accuracy against its holdout accuracy.

Each signal fires on an effect size *and* a significance test, so a big window does not alarm on a
negligible shift and a small one does not alarm on noise. Evidently's `drift_share` logic is not
used for the decision: with one text column among a few, text drift alone never reaches a 50%
share of drifted columns, which would hide exactly the vocabulary shifts we care about.

`decide` is pure (signals + thresholds -> decision with reasons) and is tested without running
Evidently; `measure` runs the Evidently report over the descriptors of `retrain.ml.descriptors`
and reads the signals off it.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency
from sklearn.exceptions import ConvergenceWarning
from statsmodels.stats.proportion import proportions_ztest

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
from ticket_ab.schema import TEXT
from ticket_ab.settings import DriftSettings

# Evidently's domain classifier, reporting its ROC AUC. Its `perc_text_content_drift` variant compares
# the AUC with the 95th percentile of 1000 random classifiers' AUCs (8 of its 9 s on 20k vs 20k
# tickets); that null distribution has a closed form (Mann-Whitney), `auc_p_value`.
TEXT_METHOD = "abs_text_content_drift"
PREDICTION_METHOD = "jensenshannon"
PREDICTED = "predicted"


@dataclass
class DriftSignals:
    """What was measured; None where a signal could not be computed (no labels, no reference accuracy)."""

    window_rows: int
    reference_rows: int
    text_auc: float | None = None
    text_p: float | None = None
    oov_reference: float | None = None
    oov_window: float | None = None
    ru_reference: float | None = None
    ru_window: float | None = None
    length_reference: float | None = None  # median characters
    length_window: float | None = None
    length_drift: float | None = None  # Evidently's score on the length descriptor (informational)
    prediction_js: float | None = None
    prediction_p: float | None = None
    labelled: int = 0
    accuracy: float | None = None
    reference_accuracy: float | None = None
    reference_labelled: int | None = None  # tickets behind reference_accuracy (its holdout size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Check:
    signal: str
    fired: bool
    score: float | None
    threshold: str
    detail: str


@dataclass
class Decision:
    retrain: bool
    status: str  # drift | no_drift | too_small | no_reference
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)

    @property
    def fired(self) -> list[str]:
        return [c.signal for c in self.checks if c.fired]

    def to_dict(self) -> dict[str, Any]:
        return {"retrain": self.retrain, "status": self.status, "reasons": list(self.reasons),
                "fired": self.fired, "checks": [asdict(c) for c in self.checks]}


def decide(signals: DriftSignals, thresholds: DriftSettings | None = None) -> Decision:
    """Retrain when any signal crosses its threshold; every reason names signal, score and threshold."""
    t = thresholds or DriftSettings()
    if signals.window_rows < t.min_window:
        return Decision(False, "too_small", [
            f"window too small: {signals.window_rows} tickets < min_window {t.min_window}; waiting for more"])
    checks = [_text_check(signals, t), _oov_check(signals, t), _language_check(signals, t),
              _prediction_check(signals, t), _accuracy_check(signals, t)]
    fired = [c for c in checks if c.fired]
    if fired:
        return Decision(True, "drift", [f"{c.signal}: {c.detail}" for c in fired], checks)
    measured = "; ".join(f"{c.signal}: {c.detail}" for c in checks)
    return Decision(False, "no_drift", [f"no signal crossed its threshold ({measured})"], checks)


def _text_check(s: DriftSignals, t: DriftSettings) -> Check:
    bar = f"p <= {t.text_p} and AUC >= {t.text_min_auc}"
    if s.text_auc is None or s.text_p is None:
        return Check("text_drift", False, None, bar, "not measured")
    fired = s.text_p <= t.text_p and s.text_auc >= t.text_min_auc
    return Check("text_drift", fired, s.text_auc, bar,
                 f"domain-classifier AUC {s.text_auc:.3f} (p={s.text_p:.2g}) {'crosses' if fired else 'within'} {bar}")


def _oov_check(s: DriftSignals, t: DriftSettings) -> Check:
    bar = f"increase >= {t.oov_delta:.3f}"
    if s.oov_window is None or s.oov_reference is None:
        return Check("new_vocabulary", False, None, bar, "not measured")
    delta = s.oov_window - s.oov_reference
    fired = delta >= t.oov_delta
    return Check("new_vocabulary", fired, delta, bar,
                 f"out-of-vocabulary token share {s.oov_window:.3f} vs reference {s.oov_reference:.3f} "
                 f"(+{delta:.3f}; {'crosses' if fired else 'within'} {bar})" if delta >= 0 else
                 f"out-of-vocabulary token share {s.oov_window:.3f} vs reference {s.oov_reference:.3f} ({delta:.3f})")


def _language_check(s: DriftSignals, t: DriftSettings) -> Check:
    bar = f"|change| >= {t.language_delta:.2f}"
    if s.ru_window is None or s.ru_reference is None:
        return Check("language_mix", False, None, bar, "not measured")
    delta = s.ru_window - s.ru_reference
    fired = abs(delta) >= t.language_delta
    return Check("language_mix", fired, delta, bar,
                 f"Russian share {s.ru_window:.1%} vs reference {s.ru_reference:.1%} "
                 f"({delta:+.1%}; {'crosses' if fired else 'within'} {bar})")


def _prediction_check(s: DriftSignals, t: DriftSettings) -> Check:
    bar = f"chi-square p <= {t.prediction_p} and JS distance >= {t.prediction_js}"
    if s.prediction_js is None or s.prediction_p is None:
        return Check("prediction_drift", False, None, bar, "not measured")
    fired = s.prediction_p <= t.prediction_p and s.prediction_js >= t.prediction_js
    return Check("prediction_drift", fired, s.prediction_js, bar,
                 f"predicted-topic mix JS distance {s.prediction_js:.3f} (chi-square p={s.prediction_p:.2g}) "
                 f"{'crosses' if fired else 'within'} {bar}")


def _accuracy_check(s: DriftSignals, t: DriftSettings) -> Check:
    bar = f"drop >= {t.accuracy_drop:.2f} and z >= {t.accuracy_z} on >= {t.min_labelled} labels"
    if s.accuracy is None or s.reference_accuracy is None or s.labelled < t.min_labelled:
        why = ("no reference accuracy" if s.reference_accuracy is None and s.accuracy is not None
               else f"{s.labelled} labelled tickets < {t.min_labelled}")
        return Check("accuracy_drop", False, None, bar, f"not judged ({why})")
    drop = s.reference_accuracy - s.accuracy
    z = accuracy_drop_z(s.accuracy, s.labelled, s.reference_accuracy, s.reference_labelled)
    fired = drop >= t.accuracy_drop and z >= t.accuracy_z
    return Check("accuracy_drop", fired, drop, bar,
                 f"champion accuracy {s.accuracy:.3f} on {s.labelled} labelled vs reference {s.reference_accuracy:.3f} "
                 f"(drop {drop:+.3f}, z={z:.1f}; {'crosses' if fired else 'within'} {bar})")


def accuracy_drop_z(accuracy: float, labelled: int, reference_accuracy: float,
                    reference_labelled: int | None) -> float:
    """How many standard errors the window's accuracy lies below the reference's.

    A two-proportion z-test when the reference's own sample size is known: the holdout accuracy is
    an estimate too (800 tickets carry +-2 points), and treating it as exact raised false alarms.
    Without it, the one-sample test against the reference accuracy taken as exact (variance under
    the null, as the two-sample test's pooled variance is).
    """
    if reference_labelled:
        z, _ = proportions_ztest([reference_accuracy * reference_labelled, accuracy * labelled],
                                 [reference_labelled, labelled])
        return float(z)
    z, _ = proportions_ztest(accuracy * labelled, labelled, value=reference_accuracy, prop_var=reference_accuracy)
    return float(-z)


# ---- significance tests (pure numpy/scipy) -----------------------------------------------------

def auc_p_value(auc: float, n_reference: int, n_window: int) -> float:
    """One-sided p-value of a domain-classifier AUC under "no drift" (Mann-Whitney normal approximation).

    Evidently scores the classifier on a random half of the pooled data, so the class sizes of its
    test half are half of each side.
    """
    n0, n1 = max(n_reference / 2, 1.0), max(n_window / 2, 1.0)
    sd = math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
    return float(0.5 * math.erfc((auc - 0.5) / sd / math.sqrt(2)))


def topic_counts_test(reference: pd.Series, window: pd.Series) -> tuple[float, float]:
    """(Jensen-Shannon distance, chi-square p) between two predicted-topic mixes.

    A two-sample contingency test: Evidently's `chisquare` treats the reference as exact and so
    over-alarms when the window is as large as the reference.
    """
    keys = sorted(set(reference.astype(str)) | set(window.astype(str)))
    ref = reference.astype(str).value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float)
    win = window.astype(str).value_counts().reindex(keys, fill_value=0).to_numpy(dtype=float)
    js = float(jensenshannon(ref / ref.sum(), win / win.sum()))
    if len(keys) < 2:
        return js, 1.0
    return js, float(chi2_contingency(np.vstack([ref, win]))[1])


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
) -> Measurement:
    """Run the Evidently report of the window against the reference and read the signals off it.

    `reference` has `text` and `predicted` (the champion's predictions on its training sample);
    `labels` (aligned with `window_texts`, NaN where unlabelled) are the window's gold labels.
    """
    started = time.perf_counter()
    thresholds = thresholds or DriftSettings()
    window_texts = window_texts.reset_index(drop=True)
    window_predicted = window_predicted.reset_index(drop=True)
    ref_frame = _frame(reference[TEXT].reset_index(drop=True), reference[PREDICTED])
    win_frame = _frame(window_texts, window_predicted)
    vocabulary = CrossFitted(ref_frame[TEXT], seed)
    ref_data = _dataset(ref_frame, ticket_descriptors(vocabulary, reference=True))
    win_data = _dataset(win_frame, ticket_descriptors(vocabulary, reference=False))
    snapshot = run_report(ref_data, win_data, thresholds)
    values = _values(snapshot)
    ref_rows, win_rows = ref_data.as_dataframe(), win_data.as_dataframe()
    text_auc = values.get((TEXT, TEXT_METHOD))
    js, chi_p = topic_counts_test(ref_frame[PREDICTED], win_frame[PREDICTED])
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
        labelled=labelled,
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        reference_labelled=reference_labelled,
    )
    return Measurement(signals, snapshot, time.perf_counter() - started, thresholds)


def _frame(texts: pd.Series, predicted: pd.Series) -> pd.DataFrame:
    """The columns Evidently starts from: normalized text, the raw text (for its script), predicted topic."""
    return pd.DataFrame({TEXT: normalize_text(texts).to_numpy(), RAW: texts.fillna("").astype(str).to_numpy(),
                         PREDICTED: predicted.astype(str).to_numpy()})


def _dataset(frame: pd.DataFrame, descriptors: list) -> Dataset:
    definition = DataDefinition(text_columns=[TEXT, RAW], categorical_columns=[PREDICTED])
    return Dataset.from_pandas(frame, data_definition=definition, descriptors=descriptors)


def run_report(reference: Dataset, window: Dataset, thresholds: DriftSettings) -> Any:
    """Evidently's drift methods over the columns and descriptors: the evidence behind the signals.

    The text signal is Evidently's domain classifier (`abs_text_content_drift`, its ROC AUC), the
    predicted-topic signal its Jensen-Shannon distance; language, OOV share and length are shown
    with Evidently's default method for their type (informational). Evidently has no p-value for
    the classifier's AUC nor a two-sample test of two topic mixes: `auc_p_value` and
    `topic_counts_test` add them.
    """
    report = Report([
        ValueDrift(column=TEXT, method=TEXT_METHOD, threshold=thresholds.text_min_auc),
        ValueDrift(column=PREDICTED, method=PREDICTION_METHOD, threshold=thresholds.prediction_js),
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
