"""`decide` and the significance tests behind it: pure, so tested on hand-made signals.

The Evidently measurement of real windows is in test_drift_measure.py."""

import json

import numpy as np
import pandas as pd
import pytest

from retrain.ml import drift
from retrain.ml.drift import DriftSignals, decide
from ticket_ab.settings import DriftSettings

QUIET = dict(window_rows=1000, reference_rows=1500, text_auc=0.505, text_p=0.3, oov_reference=0.02,
             oov_window=0.021, ru_reference=0.10, ru_window=0.11, prediction_js=0.03, prediction_p=0.4,
             priority_js=0.02, priority_p=0.5, labelled=300, accuracy=0.90, reference_accuracy=0.91)


def signals(**changes) -> DriftSignals:
    return DriftSignals(**{**QUIET, **changes})


# ---- decide(): pure ----------------------------------------------------------------------------

def test_quiet_signals_do_not_retrain_and_say_what_was_measured():
    decision = decide(signals(), DriftSettings())
    assert decision.retrain is False and decision.status == "no_drift"
    (reason,) = decision.reasons
    assert reason.startswith("no signal crossed its threshold") and "AUC 0.505" in reason


def test_a_window_below_min_window_is_skipped_with_counts_in_the_reason():
    decision = decide(signals(window_rows=37, text_auc=0.9, text_p=1e-9), DriftSettings(min_window=200))
    assert decision.retrain is False and decision.status == "too_small"
    assert decision.reasons == ["window too small: 37 tickets < min_window 200; waiting for more"]


@pytest.mark.parametrize(("signal", "changes", "in_reason"), [
    ("text_drift", {"text_auc": 0.61, "text_p": 1e-6}, "AUC 0.610"),
    ("new_vocabulary", {"oov_window": 0.09}, "0.090 vs reference 0.020"),
    ("language_mix", {"ru_window": 0.55}, "Russian share 55.0% vs reference 10.0%"),
    ("language_mix", {"ru_window": 0.0}, "-10.0%"),
    ("prediction_drift", {"prediction_js": 0.25, "prediction_p": 1e-12}, "JS distance 0.250"),
    ("priority_mix", {"priority_js": 0.22, "priority_p": 1e-9}, "predicted-priority mix JS distance 0.220"),
    ("accuracy_drop", {"accuracy": 0.80}, "champion accuracy 0.800 on 300 labelled vs reference 0.910"),
])
def test_each_signal_alone_triggers_retraining_with_score_and_threshold_in_the_reason(signal, changes, in_reason):
    decision = decide(signals(**changes), DriftSettings())
    assert decision.retrain is True and decision.status == "drift"
    assert decision.fired == [signal]
    (reason,) = decision.reasons
    assert reason.startswith(f"{signal}: ") and in_reason in reason and "crosses" in reason


@pytest.mark.parametrize("changes", [
    {"text_auc": 0.515, "text_p": 1e-5},  # significant but negligible (a huge window)
    {"text_auc": 0.56, "text_p": 0.04},  # large but not significant (a small window)
    {"prediction_js": 0.08, "prediction_p": 1e-9},
    {"prediction_js": 0.2, "prediction_p": 0.05},
    {"accuracy": 0.84, "labelled": 30},  # too few labels to judge
    {"accuracy": 0.87},  # a 4-point drop is below accuracy_drop
])
def test_a_signal_needs_both_effect_size_and_significance(changes):
    assert decide(signals(**changes), DriftSettings()).retrain is False


def test_a_champion_without_priorities_leaves_the_priority_mix_unmeasured():
    decision = decide(signals(priority_js=None, priority_p=None), DriftSettings())
    (check,) = [c for c in decision.checks if c.signal == "priority_mix"]
    assert not check.fired and check.detail.startswith("not measured (the champion predicts no priority")


def test_accuracy_is_not_judged_without_a_reference_accuracy():
    decision = decide(signals(accuracy=0.5, reference_accuracy=None), DriftSettings())
    assert decision.retrain is False
    assert "not judged (no reference accuracy)" in decision.reasons[0]


def test_decision_serializes_with_every_check():
    payload = decide(signals(oov_window=0.2)).to_dict()
    json.dumps(payload)
    assert [c["signal"] for c in payload["checks"]] == [
        "text_drift", "new_vocabulary", "language_mix", "prediction_drift", "priority_mix", "accuracy_drop"]
    assert payload["fired"] == ["new_vocabulary"]


def test_auc_p_value_is_half_at_chance_and_small_for_a_clear_separation():
    assert drift.auc_p_value(0.5, 1000, 1000) == pytest.approx(0.5)
    assert drift.auc_p_value(0.56, 5000, 5000) < 1e-6
    assert drift.auc_p_value(0.56, 100, 100) > 0.05


def test_topic_counts_test_separates_a_shifted_mix_from_a_resample():
    rng = np.random.default_rng(0)
    topics = np.array(["access", "email", "network", "billing"])
    reference = pd.Series(rng.choice(topics, 3000, p=[0.4, 0.3, 0.2, 0.1]))
    same = pd.Series(rng.choice(topics, 1000, p=[0.4, 0.3, 0.2, 0.1]))
    shifted = pd.Series(rng.choice(topics, 1000, p=[0.1, 0.2, 0.6, 0.1]))
    same_js, same_p = drift.topic_counts_test(reference, same)
    shift_js, shift_p = drift.topic_counts_test(reference, shifted)
    assert same_p > 0.01 and same_js < 0.05
    assert shift_p < 1e-10 and shift_js > 0.2


def test_accuracy_drop_counts_the_uncertainty_of_the_reference_holdout():
    # 0.872 on 179 labels vs 0.924 measured on an 800-ticket holdout: alarming against an exact
    # reference (z 2.6), within noise once the holdout's own sample size is counted (z 2.2).
    exact = decide(signals(accuracy=0.872, labelled=179, reference_accuracy=0.924))
    sampled = decide(signals(accuracy=0.872, labelled=179, reference_accuracy=0.924, reference_labelled=800))
    assert "accuracy_drop" in exact.fired and "z=2.6" in exact.reasons[0]
    assert "accuracy_drop" not in sampled.fired
    assert drift.accuracy_drop_z(0.872, 179, 0.924, 800) == pytest.approx(2.25, abs=0.01)
