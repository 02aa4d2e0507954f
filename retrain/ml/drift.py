"""Has the traffic moved away from what the champion learned? `retrain.ml.drift_measure` measures, `decide` judges.

The window is compared with the champion's training reference (stored with its model version) on
six signals: text drift (Evidently's domain classifier), the share of words the reference never
used, the share of Russian tickets, the distribution of the champion's predicted topics, that of its
predicted priorities (a two-head champion whose reference has them) and, where feedback exists, the
champion's accuracy against its holdout accuracy. The priority mix is judged by the topic mix's bars:
both are one categorical answer's mix, and an outage that floods the queue with urgent tickets moves
the priority mix while the topics may stay put.

Each signal fires on an effect size *and* a significance test, so a big window does not alarm on a
negligible shift and a small one does not alarm on noise. Evidently's `drift_share` logic is not
used for the decision: with one text column among a few, text drift alone never reaches a 50%
share of drifted columns, which would hide exactly the vocabulary shifts we care about.

`decide` is pure (signals + thresholds -> decision with reasons) and is tested without running
Evidently; `drift_measure.measure` runs the Evidently report and reads the signals off it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency
from statsmodels.stats.proportion import proportions_ztest

from ticket_ab.settings import DriftSettings


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
    priority_js: float | None = None  # the predicted-priority mix; None: a one-head champion or an older reference
    priority_p: float | None = None
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
              _prediction_check(signals, t), _priority_check(signals, t), _accuracy_check(signals, t)]
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
    return _mix_check("prediction_drift", "predicted-topic", s.prediction_js, s.prediction_p, t, "not measured")


def _priority_check(s: DriftSignals, t: DriftSettings) -> Check:
    return _mix_check("priority_mix", "predicted-priority", s.priority_js, s.priority_p, t,
                      "not measured (the champion predicts no priority, or its reference has none)")


def _mix_check(name: str, noun: str, js: float | None, p: float | None, t: DriftSettings, unmeasured: str) -> Check:
    """A predicted mix against the reference's: fired when the chi-square p and the JS distance both cross."""
    bar = f"chi-square p <= {t.prediction_p} and JS distance >= {t.prediction_js}"
    if js is None or p is None:
        return Check(name, False, None, bar, unmeasured)
    fired = p <= t.prediction_p and js >= t.prediction_js
    return Check(name, fired, js, bar,
                 f"{noun} mix JS distance {js:.3f} (chi-square p={p:.2g}) {'crosses' if fired else 'within'} {bar}")


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
