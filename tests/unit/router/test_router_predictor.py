"""A faster scorer is used only when it gives the pipeline's probabilities (exactly, or within float rounding)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from router.features_fast import as_row, tfidf_features
from router.predictor import (
    DIRECT,
    PIPELINE,
    ROUNDING,
    TFIDF,
    compile_scorer,
    direct_scorer,
    pipeline_scorer,
    tfidf_scorer,
)
from tests.unit.router.router_testkit import fitted_pipeline, sample_tickets

TEXTS = sample_tickets(per_topic=5, seed=9)["text"].tolist() + ["", "ünïcode тикет", "x" * 5000, "vpn vpn vpn VPN"]


def test_standard_pipeline_uses_the_tfidf_scorer_with_the_pipelines_probabilities():
    pipeline = fitted_pipeline(seed=0)
    score, scoring = compile_scorer(pipeline)
    assert scoring == TFIDF
    for text in TEXTS:
        expected = pipeline.predict_proba(pd.DataFrame({"text": [text]}))[0]
        assert np.allclose(score(text), expected, **ROUNDING) and score(text).argmax() == expected.argmax()


def test_tfidf_row_is_the_vectorizers_own_row():
    vectorizer = fitted_pipeline(seed=0).named_steps["features"].transformers_[0][1]
    features = tfidf_features(vectorizer)
    for text in TEXTS:
        mine, theirs = as_row(features(text), len(vectorizer.vocabulary_)), vectorizer.transform([text])
        assert np.array_equal(mine.indices, np.sort(theirs.indices))
        assert np.allclose(mine.toarray(), theirs.toarray(), **ROUNDING)


def test_direct_scorer_gives_identical_probabilities():
    pipeline = fitted_pipeline(seed=0)
    score = direct_scorer(pipeline)
    for text in TEXTS:
        assert np.array_equal(score(text), pipeline.predict_proba(pd.DataFrame({"text": [text]}))[0])


def test_binary_tfidf_is_not_built_by_hand():
    data = sample_tickets(per_topic=10)
    features = ColumnTransformer([("tfidf", TfidfVectorizer(binary=True), "text")])
    pipeline = Pipeline([("features", features), ("clf", LogisticRegression(max_iter=500))])
    pipeline.fit(data[["text"]], data["topic"])
    assert tfidf_scorer(pipeline) is None
    assert compile_scorer(pipeline)[1] == DIRECT


def test_pipeline_with_an_extra_first_step_uses_the_full_pipeline():
    fitted = fitted_pipeline(seed=0)
    guarded = Pipeline([("guard", FunctionTransformer(lambda frame: frame)), *fitted.steps])
    assert direct_scorer(guarded) is None
    assert compile_scorer(guarded)[1] == PIPELINE


def test_column_transformer_over_two_columns_uses_the_full_pipeline():
    data = sample_tickets(per_topic=10).assign(channel=lambda d: np.where(d.index % 2, "mail", "phone web"))
    features = ColumnTransformer([("text", TfidfVectorizer(), "text"), ("channel", TfidfVectorizer(), "channel")])
    pipeline = Pipeline([("features", features), ("clf", LogisticRegression(max_iter=500))])
    pipeline.fit(data[["text", "channel"]], data["topic"])
    assert direct_scorer(pipeline) is None


def test_dense_column_transformer_output_uses_the_full_pipeline():
    data = sample_tickets(per_topic=10)
    features = ColumnTransformer([("tfidf", TfidfVectorizer(), "text")], sparse_threshold=0.0)
    pipeline = Pipeline([("features", features), ("clf", LogisticRegression(max_iter=500))])
    pipeline.fit(data[["text"]], data["topic"])
    assert compile_scorer(pipeline)[1] == PIPELINE


def test_a_tfidf_scorer_that_disagrees_falls_back_to_the_direct_one(monkeypatch):
    pipeline = fitted_pipeline(seed=0)
    monkeypatch.setattr("router.predictor.tfidf_scorer", lambda p: (lambda text: np.zeros(8)))
    assert compile_scorer(pipeline)[1] == DIRECT


def test_scorers_that_disagree_are_not_used(monkeypatch):
    pipeline = fitted_pipeline(seed=0)
    monkeypatch.setattr("router.predictor.tfidf_scorer", lambda p: (lambda text: np.zeros(8)))
    monkeypatch.setattr("router.predictor.direct_scorer", lambda p: (lambda text: np.zeros(8)))
    score, scoring = compile_scorer(pipeline)
    assert scoring == PIPELINE
    assert np.array_equal(score("vpn"), pipeline_scorer(pipeline)("vpn"))


def test_two_class_model_scores_through_its_own_predict_proba():
    data = sample_tickets(per_topic=15)
    data = data[data["topic"].isin(data["topic"].unique()[:2])]
    pipeline = Pipeline([("features", ColumnTransformer([("tfidf", TfidfVectorizer(sublinear_tf=True), "text")])),
                         ("clf", LogisticRegression(max_iter=500))]).fit(data[["text"]], data["topic"])
    score, scoring = compile_scorer(pipeline)
    assert scoring == TFIDF
    for text in TEXTS:
        assert np.allclose(score(text), pipeline.predict_proba(pd.DataFrame({"text": [text]}))[0], **ROUNDING)
