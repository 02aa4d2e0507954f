"""A two-head version's compiled scorer: one hand-built feature row per ticket, both heads scored from it, equal to
the model's `predict_both` within float rounding; checked when loaded, and one-head versions scored as before."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

import router.predictor as predictor
from load_test.simulate.generator import generate
from retrain.ml.automl import served_pipeline
from retrain.ml.candidates import CANDIDATES
from router.heads_fast import compile_head
from router.models import FROM_REGISTRY, ModelError, serving_model
from router.predictor import (
    DIRECT,
    PIPELINE,
    ROUNDING,
    TFIDF,
    Scores,
    compile_both,
    compile_scorer,
    score_many,
    score_many_both,
)
from router.scoring import predict_all, predict_topics
from tests.unit.router.router_testkit import fitted_two_head, loaded
from ticket_ab.twohead import PRIORITY_HEAD, TOPIC_HEAD, TwoHeadModel

pytestmark = pytest.mark.slow  # fits and converts models: `make test` runs it, `make check` does not

TEXTS = generate("baseline", 40, seed=3)["text"].tolist() + [
    "", "Не работает впн, ошибка 0x80070005 после v3.14.2", "vpn " * 500, "zzzz qqqq", "URGENT: printer"]


def assert_scores_like_predict_both(model, expected_scoring: str = TFIDF, exact: bool = False) -> None:
    score, scoring = compile_both(model)
    assert scoring == expected_scoring
    topic, priority = model.predict_both(pd.DataFrame({"text": TEXTS}))
    got = [score(text) for text in TEXTS]
    for head, want in ((0, topic), (1, priority)):
        mine = np.array([scores[head] for scores in got])
        if exact:
            assert np.array_equal(mine, want)
        np.testing.assert_allclose(mine, want, **ROUNDING)
        assert np.array_equal(mine.argmax(axis=1), want.argmax(axis=1))


def test_both_heads_are_scored_by_hand_with_the_models_own_probabilities(two_head):
    assert compile_head(two_head.topic_) is not None and compile_head(two_head.priority_) is not None
    assert_scores_like_predict_both(two_head)


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_automl_candidate_as_both_heads_is_scored_by_hand_with_predict_both(name):
    data = generate("baseline", 400, seed=0)
    served = served_pipeline(name)  # the features and classifier AutoML serves, calibrated where it calibrates
    model = TwoHeadModel(served.steps[0][1], served.steps[-1][1], served_pipeline(name).steps[-1][1])
    model.fit(data[["text"]], data["topic"], priority=data["priority"])
    assert compile_head(model.priority_) is not None  # four priorities: written out, as the topic head is
    assert_scores_like_predict_both(model)


def test_the_feature_row_is_built_once_per_ticket_for_both_heads(monkeypatch, two_head):
    built = []

    def counted(transformer):
        features, width = text_features(transformer)
        return (lambda text: built.append(text) or features(text)), width

    text_features = predictor.text_features
    monkeypatch.setattr(predictor, "text_features", counted)
    score, scoring = compile_both(two_head)
    assert scoring == TFIDF
    built.clear()  # the load-time check scored the samples
    for text in TEXTS:
        score(text)
    assert built == TEXTS


def test_a_priority_head_not_written_out_gets_the_shared_row_and_its_own_code():
    isotonic = CalibratedClassifierCV(LinearSVC(dual="auto"), method="isotonic", cv=3)
    model = fitted_two_head(seed=1, n=300, priority=isotonic)
    assert compile_head(model.priority_) is None
    assert_scores_like_predict_both(model)


def test_features_not_built_by_hand_score_both_heads_directly_and_exactly(two_head):
    other = copy.deepcopy(two_head)
    union = FeatureUnion([("word", TfidfVectorizer()), ("counts", CountVectorizer())])
    data = generate("baseline", 300, seed=4)
    other.features.set_params(tfidf=union)
    other.fit(data[["text"]], data["topic"], priority=data["priority"])
    assert_scores_like_predict_both(other, expected_scoring=DIRECT, exact=True)


def test_two_head_scorers_that_disagree_are_not_used(monkeypatch, two_head):
    def wrong(model):
        reference = predictor.both_reference(model)
        return lambda text: Scores(*(np.roll(part, 1) for part in reference(text)))

    monkeypatch.setattr(predictor, "two_head_tfidf_scorer", wrong)
    monkeypatch.setattr(predictor, "two_head_direct_scorer", wrong)
    assert_scores_like_predict_both(two_head, expected_scoring=PIPELINE, exact=True)


def test_a_one_head_pipeline_is_scored_as_before_with_no_priority(champion_model):
    pipeline = champion_model.pipeline
    score, scoring = compile_both(pipeline)
    topic, name = compile_scorer(pipeline)
    assert scoring == name == TFIDF
    for text in TEXTS:
        scores = score(text)
        assert scores.priority is None and np.array_equal(scores.topic, topic(text))


def test_topic_only_callers_read_a_two_head_model_as_its_topic_head(two_head):
    topic, scoring = compile_scorer(two_head)  # CUPAC and the benches: topic probabilities, compiled
    assert scoring == TFIDF
    want = two_head.predict_proba(pd.DataFrame({"text": TEXTS}))
    np.testing.assert_allclose(np.array([topic(text) for text in TEXTS]), want, **ROUNDING)
    assert np.array_equal(score_many(two_head, TEXTS), want)
    both = score_many_both(two_head, TEXTS)
    expected = two_head.predict_both(pd.DataFrame({"text": TEXTS}))
    assert all(np.array_equal(got, wanted) for got, wanted in zip(both, expected, strict=True))


def test_a_batch_and_single_tickets_get_the_same_predictions(two_head):
    model = loaded(two_head, "champion", "5")
    batch = predict_all(model, TEXTS)
    for text, together in zip(TEXTS, batch, strict=True):
        alone = predict_all(model, [text])[0]
        assert (alone.topic, alone.priority) == (together.topic, together.priority)
        assert alone.priority_scores.keys() == together.priority_scores.keys()
        np.testing.assert_allclose(list(alone.priority_scores.values()), list(together.priority_scores.values()),
                                   atol=2e-6)


def test_a_two_head_version_serves_after_its_warm_up_with_its_priorities_and_threshold(two_head):
    model = serving_model("champion", "5", "run-5", two_head, "registry")
    assert model.scoring == TFIDF
    assert model.priority_classes == tuple(two_head.priority_classes_)
    assert model.urgent_threshold == two_head.urgent_threshold
    assert model.describe()["heads"] == [TOPIC_HEAD, PRIORITY_HEAD]


def test_a_version_whose_priority_scores_do_not_fit_its_classes_is_refused(two_head):
    broken = copy.copy(two_head)
    broken.priority_classes_ = two_head.priority_classes_[:3]
    with pytest.raises(ModelError, match="priority scores of shape"):
        serving_model("challenger", "8", "run-8", broken, "registry")


def test_the_champions_covariate_scores_its_topic_head_alone(two_head):
    model = serving_model("champion", "3", "run-3", two_head, FROM_REGISTRY)
    assert model.score_topic is not None
    for texts in (["vpn offline again"], ["vpn offline again", "invoice charged twice", "Не работает впн"]):
        alone, both = predict_topics(model, texts), predict_all(model, texts)
        assert [p.priority for p in alone] == [None] * len(texts) and all(p.priority for p in both)
        assert [p.topic for p in alone] == [p.topic for p in both]
        assert [p.confidence for p in alone] == pytest.approx([p.confidence for p in both], abs=1e-6)
