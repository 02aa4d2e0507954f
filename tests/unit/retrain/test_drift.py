import json
from html import escape

import numpy as np
import pandas as pd
import pytest

from load_test.simulate.generator import generate
from retrain.ml import descriptors, drift, drift_report
from retrain.ml.drift import DriftSignals, decide
from retrain.ml.features import baseline_pipeline
from ticket_ab.settings import DriftSettings

QUIET = dict(window_rows=1000, reference_rows=1500, text_auc=0.505, text_p=0.3, oov_reference=0.02,
             oov_window=0.021, ru_reference=0.10, ru_window=0.11, prediction_js=0.03, prediction_p=0.4,
             labelled=300, accuracy=0.90, reference_accuracy=0.91)


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


def test_accuracy_is_not_judged_without_a_reference_accuracy():
    decision = decide(signals(accuracy=0.5, reference_accuracy=None), DriftSettings())
    assert decision.retrain is False
    assert "not judged (no reference accuracy)" in decision.reasons[0]


def test_decision_serializes_with_every_check():
    payload = decide(signals(oov_window=0.2)).to_dict()
    json.dumps(payload)
    assert [c["signal"] for c in payload["checks"]] == [
        "text_drift", "new_vocabulary", "language_mix", "prediction_drift", "accuracy_drop"]
    assert payload["fired"] == ["new_vocabulary"]


# ---- descriptors and tests ---------------------------------------------------------------------

def test_normalize_text_folds_numbers_emails_and_case():
    out = descriptors.normalize_text(pd.Series(["Ticket INC0012345 from Ann.Lee@contoso.com on 2026-03-01"]))
    assert out[0].split() == ["ticket", "inc", "number", "from", "[pii_email]", "on", "number"]


def test_raw_and_router_masked_contact_lines_normalize_alike():
    raw = "Call me at +1 415 555 0134 or ann.lee@contoso.com, card 4111 1111 1111 1111."
    masked = "Call me at [PII_PHONE] or [PII_EMAIL], card [PII_CARD]."
    normalized = descriptors.normalize_text(pd.Series([raw, masked]))
    assert normalized[0].split() == normalized[1].split()


def test_language_is_read_from_the_script():
    texts = pd.Series(["Не работает впн", "VPN down", "VPN не работает совсем", ""])
    assert descriptors.language_of(texts).tolist() == ["ru", "en", "ru", "en"]


def test_oov_share_is_near_zero_for_the_same_vocabulary_and_high_for_new_words():
    reference = pd.Series([f"printer jam on floor {w}" for w in ("one", "two")] * 50)
    same = descriptors.oov_shares(reference, pd.Series(["printer jam on floor one"] * 20))[1]
    new = descriptors.oov_shares(reference, pd.Series(["nimbus tenant handle sync"] * 20))[1]
    assert same.mean() == 0.0 and new.mean() == 1.0


def test_auc_p_value_is_half_at_chance_and_small_for_a_clear_separation():
    assert drift.auc_p_value(0.5, 1000, 1000) == pytest.approx(0.5)
    assert drift.auc_p_value(0.56, 5000, 5000) < 1e-6
    assert drift.auc_p_value(0.56, 100, 100) > 0.05


def test_topic_counts_test_separates_a_shifted_mix_from_a_resample():
    rng = np.random.default_rng(0)
    topics = np.array(["access", "email", "network", "billing"])
    reference = pd.Series(rng.choice(topics, 3000, p=[0.4, 0.3, 0.2, 0.1]))
    same_js, same_p = drift.topic_counts_test(reference, pd.Series(rng.choice(topics, 1000, p=[0.4, 0.3, 0.2, 0.1])))
    shift_js, shift_p = drift.topic_counts_test(reference, pd.Series(rng.choice(topics, 1000, p=[0.1, 0.2, 0.6, 0.1])))
    assert same_p > 0.01 and same_js < 0.05
    assert shift_p < 1e-10 and shift_js > 0.2


# ---- measure(): the Evidently report on small generated windows --------------------------------

@pytest.fixture(scope="module")
def champion():
    train = generate("baseline", 1500, 1)
    model = baseline_pipeline().fit(train[["text"]], train["topic"])
    reference = train[["text", "topic"]].assign(predicted=model.predict(train[["text"]]))
    return model, reference


def _measure(champion, scenario: str, seed: int, n: int = 700):
    model, reference = champion
    window = generate(scenario, n, seed, start="2026-04-01T00:00:00Z")  # a month later: dates in texts differ
    labels = window["topic"].where(np.random.default_rng(seed).random(n) < 0.3)
    predicted = pd.Series(model.predict(window[["text"]]))
    return drift.measure(window["text"], predicted, reference, labels=labels, reference_accuracy=0.9)


@pytest.mark.parametrize("seed", [11, 12])
def test_baseline_window_against_its_reference_is_not_drift(champion, seed):
    measurement = _measure(champion, "baseline", seed)
    decision = decide(measurement.signals)
    assert decision.retrain is False, decision.reasons
    assert 0.4 < measurement.signals.text_auc < 0.56


@pytest.mark.parametrize(("scenario", "expected"), [
    ("new_product", {"text_drift", "new_vocabulary"}),
    ("outage", {"text_drift", "prediction_drift"}),
    ("policy_change", {"text_drift", "prediction_drift"}),
    ("new_language", {"text_drift", "language_mix"}),
])
def test_each_drifting_scenario_triggers_on_the_signals_it_moves(champion, scenario, expected):
    measurement = _measure(champion, scenario, 21)
    decision = decide(measurement.signals)
    assert decision.retrain is True
    assert expected <= set(decision.fired), decision.reasons


def test_report_is_saved_as_html_and_json_with_signals_and_decision(champion, tmp_path):
    measurement = _measure(champion, "new_language", 31, n=400)
    decision = decide(measurement.signals)
    html, js = drift_report.save_report(measurement, decision, tmp_path / "drift", "run-1", extra={"run_id": "run-1"})
    page = html.read_text()
    assert html.stat().st_size > 10_000 and "Decision: drift" in page
    for check in decision.checks:  # every signal that decided, with its threshold
        assert f"<td>{check.signal}</td>" in page and escape(check.threshold) in page
    assert "Absolute text content drift" in page  # Evidently's own report, embedded
    payload = json.loads(js.read_text())
    assert payload["run_id"] == "run-1"
    assert payload["decision"]["retrain"] is True
    assert payload["signals"]["ru_window"] > 0.4
    metrics = {m["config"]["column"] for m in payload["evidently"]["metrics"]}
    assert {"text", "predicted", "language", "oov_share", "length"} <= metrics


def test_accuracy_drop_counts_the_uncertainty_of_the_reference_holdout():
    # 0.872 on 179 labels vs 0.924 measured on an 800-ticket holdout: alarming against an exact
    # reference (z 2.6), within noise once the holdout's own sample size is counted (z 2.2).
    exact = decide(signals(accuracy=0.872, labelled=179, reference_accuracy=0.924))
    sampled = decide(signals(accuracy=0.872, labelled=179, reference_accuracy=0.924, reference_labelled=800))
    assert "accuracy_drop" in exact.fired and "z=2.6" in exact.reasons[0]
    assert "accuracy_drop" not in sampled.fired
    assert drift.accuracy_drop_z(0.872, 179, 0.924, 800) == pytest.approx(2.25, abs=0.01)
