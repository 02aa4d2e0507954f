"""Every model shape AutoML can serve is scored by the hand-built scorer, with the library's probabilities.

The candidates are fitted on 400 generated tickets exactly as AutoML serves them
(`served_pipeline`: word or word+character TF-IDF, calibration for LinearSVC/Ridge, soft voting),
and the compiled scorer must both be chosen and reproduce `pipeline.predict_proba` within float
rounding. Shapes the scorer does not write out must still agree, through the classifier's own code.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from load_test.simulate.generator import generate
from retrain.ml.automl import served_pipeline
from retrain.ml.candidates import CANDIDATES
from retrain.ml.features import WORD, WORD_CHAR, make_features, text_pipeline
from router.features_fast import as_row, text_features
from router.heads_fast import compile_head
from router.predictor import DIRECT, ROUNDING, TFIDF, compile_scorer

TRAIN = generate("baseline", 400, seed=0)
TEXTS = generate("baseline", 40, seed=1)["text"].tolist() + [
    "", "Не работает впн, ошибка 0x80070005 после v3.14.2", "vpn " * 500, "zzzz qqqq"]


@cache
def fitted(name: str) -> Pipeline:
    return served_pipeline(name).fit(TRAIN[["text"]], TRAIN["topic"])


def fit(pipeline: Pipeline, data: pd.DataFrame = TRAIN) -> Pipeline:
    return pipeline.fit(data[["text"]], data["topic"])


def assert_scores_like_the_pipeline(pipeline: Pipeline, expected_scoring: str = TFIDF) -> None:
    score, scoring = compile_scorer(pipeline)
    assert scoring == expected_scoring
    expected = pipeline.predict_proba(pd.DataFrame({"text": TEXTS}))
    got = np.array([score(text) for text in TEXTS])
    np.testing.assert_allclose(got, expected, **ROUNDING)
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_automl_candidate_is_scored_by_hand_with_its_pipelines_probabilities(name):
    pipeline = fitted(name)
    assert compile_head(pipeline.named_steps["clf"]) is not None  # written out, not the classifier's predict_proba
    assert_scores_like_the_pipeline(pipeline)


def test_word_and_character_row_is_the_unions_own_row():
    union = fitted("svm_wc").named_steps["features"].transformers_[0][1]
    features, width = text_features(union)
    for text in TEXTS:
        mine, theirs = as_row(features(text), width), union.transform([text])
        assert mine.shape == theirs.shape
        assert np.array_equal(mine.indices, np.sort(theirs.indices))
        np.testing.assert_allclose(mine.toarray(), theirs.toarray(), **ROUNDING)


def test_union_weights_scale_each_vectorizers_columns():
    union = make_features(WORD_CHAR).set_params(transformer_weights={"word": 2.0, "char": 0.5})
    pipeline = fit(text_pipeline(LogisticRegression(max_iter=500), WORD_CHAR).set_params(features__tfidf=union))
    assert_scores_like_the_pipeline(pipeline)


@pytest.mark.parametrize("classifier", [
    LogisticRegression(solver="liblinear"),  # one-vs-rest
    SGDClassifier(loss="log_loss", random_state=0),
    MultinomialNB(alpha=0.1),
    CalibratedClassifierCV(LinearSVC(dual="auto"), method="sigmoid", cv=3),  # three members, averaged
    VotingClassifier([("a", LogisticRegression(max_iter=500)), ("b", MultinomialNB())], voting="soft", weights=[3, 1]),
], ids=["lr_ovr", "sgd_log_loss", "multinomial_nb", "calibrated_ensemble", "weighted_vote"])
def test_other_linear_naive_bayes_and_voting_shapes_are_written_out_too(classifier):
    pipeline = fit(text_pipeline(classifier, WORD))
    assert compile_head(pipeline.named_steps["clf"]) is not None
    assert_scores_like_the_pipeline(pipeline)


@pytest.mark.parametrize("classifier", [
    CalibratedClassifierCV(LinearSVC(dual="auto"), method="isotonic", cv=3, ensemble=False),
    VotingClassifier([("lr", LogisticRegression(max_iter=500)),
                      ("svm", CalibratedClassifierCV(LinearSVC(dual="auto"), method="isotonic", cv=3))], voting="soft"),
], ids=["isotonic", "vote_with_an_isotonic_member"])
def test_classifiers_not_written_out_get_the_hand_built_row_and_their_own_code(classifier):
    pipeline = fit(text_pipeline(classifier, WORD_CHAR))
    assert compile_head(pipeline.named_steps["clf"]) is None
    assert_scores_like_the_pipeline(pipeline)


def test_two_class_calibrated_model_scores_through_its_own_predict_proba():
    two = TRAIN[TRAIN["topic"].isin(TRAIN["topic"].value_counts().index[:2])]
    pipeline = fit(served_pipeline("svm_wc"), two)
    assert compile_head(pipeline.named_steps["clf"]) is None
    assert_scores_like_the_pipeline(pipeline)


def test_union_with_a_count_vectorizer_is_not_built_by_hand():
    union = FeatureUnion([("word", TfidfVectorizer()), ("counts", CountVectorizer())])
    pipeline = fit(text_pipeline(LogisticRegression(max_iter=500)).set_params(features__tfidf=union))
    assert text_features(pipeline.named_steps["features"].transformers_[0][1]) is None
    assert_scores_like_the_pipeline(pipeline, expected_scoring=DIRECT)
