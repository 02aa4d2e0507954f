"""The direct scorer is used only when it gives exactly the pipeline's probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from router.predictor import DIRECT, PIPELINE, compile_scorer, direct_scorer, pipeline_scorer
from tests.unit.router.router_testkit import fitted_pipeline, sample_tickets


def test_standard_pipeline_uses_the_direct_scorer_with_identical_probabilities():
    pipeline = fitted_pipeline(seed=0)
    score, scoring = compile_scorer(pipeline)
    assert scoring == DIRECT
    texts = sample_tickets(per_topic=5, seed=9)["text"].tolist() + ["", "ünïcode тикет", "x" * 5000]
    for text in texts:
        expected = pipeline.predict_proba(pd.DataFrame({"text": [text]}))[0]
        assert np.array_equal(score(text), expected)


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


def test_a_direct_scorer_that_disagrees_is_not_used(monkeypatch):
    pipeline = fitted_pipeline(seed=0)
    monkeypatch.setattr("router.predictor.direct_scorer", lambda p: (lambda text: np.zeros(8)))
    score, scoring = compile_scorer(pipeline)
    assert scoring == PIPELINE
    assert np.array_equal(score("vpn"), pipeline_scorer(pipeline)("vpn"))
