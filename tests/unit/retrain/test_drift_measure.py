"""Evidently's measurement of generated windows against a champion's reference, the descriptors it
reads, and the saved report. Runs Evidently and fits a champion: `make test` runs it, `make check` does not."""

import json
from html import escape

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from load_test.simulate.generator import generate
from retrain.ml import descriptors, drift, drift_measure, drift_report
from retrain.ml.drift import decide
from retrain.ml.features import baseline_pipeline
from retrain.tasks.check import champion_answers
from ticket_ab.twohead import TwoHeadModel

pytestmark = pytest.mark.slow


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
    vocabulary = descriptors.CrossFitted(reference, seed=0)
    same = vocabulary.shares(pd.Series(["printer jam on floor one"] * 20), reference=False)
    new = vocabulary.shares(pd.Series(["nimbus tenant handle sync"] * 20), reference=False)
    assert same.mean() == 0.0 and new.mean() == 1.0


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
    return drift_measure.measure(window["text"], predicted, reference, labels=labels, reference_accuracy=0.9)


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


@pytest.fixture(scope="module")
def two_head_champion():
    train = generate("baseline", 1500, 1)
    model = TwoHeadModel(ColumnTransformer([("tfidf", TfidfVectorizer(min_df=2), "text")]),
                         LogisticRegression(max_iter=500), LogisticRegression(max_iter=500))
    model.fit(train[["text"]], train["topic"], priority=train["priority"])
    reference = train[["text", "topic"]].assign(predicted=model.predict(train[["text"]]),
                                                predicted_priority=model.predict_priority(train[["text"]]))
    return model, reference


def _measure_priorities(champion, scenario: str, seed: int, n: int = 700):
    model, reference = champion
    window = generate(scenario, n, seed, start="2026-04-01T00:00:00Z")
    topics, priorities = champion_answers(model, window[["text"]])
    return drift_measure.measure(window["text"], topics, reference, window_priority=priorities)


def test_an_outage_moves_the_predicted_priority_mix_and_a_quiet_window_does_not(two_head_champion):
    quiet = decide(_measure_priorities(two_head_champion, "baseline", 11).signals)
    outage = _measure_priorities(two_head_champion, "outage", 21)
    assert "priority_mix" not in quiet.fired
    assert "priority_mix" in decide(outage.signals).fired
    window = generate("outage", 700, 21, start="2026-04-01T00:00:00Z")
    _, priorities = champion_answers(two_head_champion[0], window[["text"]])
    js, p = drift.topic_counts_test(two_head_champion[1]["predicted_priority"], priorities)
    assert outage.signals.priority_p == p and outage.signals.priority_js == pytest.approx(js, abs=1e-6)


def test_a_one_head_champion_leaves_the_priority_mix_unmeasured(champion):
    signals = _measure(champion, "outage", 21).signals
    assert signals.priority_js is None and signals.priority_p is None
