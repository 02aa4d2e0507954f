"""The two-head model: one feature pass, a topic head that is the whole one-head model, an optional priority head."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from load_test.simulate.generator import generate
from ticket_ab.twohead import (
    PRIORITY_HEAD,
    TOPIC_HEAD,
    URGENT,
    TwoHeadModel,
    decide_priority,
    heads_of,
    priority_note,
)


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return generate("baseline", n=600, seed=26)


def _features() -> ColumnTransformer:
    return ColumnTransformer([("tfidf", TfidfVectorizer(min_df=2), "text")])


def _model(**kwargs) -> TwoHeadModel:
    return TwoHeadModel(_features(), LogisticRegression(max_iter=500), LogisticRegression(max_iter=500), **kwargs)


def test_topic_head_without_priorities_is_the_one_head_pipeline(tickets):
    one = Pipeline([("features", _features()), ("clf", LogisticRegression(max_iter=500))]).fit(
        tickets[["text"]], tickets["topic"])
    two = _model().fit(tickets[["text"]], tickets["topic"])
    np.testing.assert_allclose(two.predict_proba(tickets[["text"]]), one.predict_proba(tickets[["text"]]), rtol=1e-12)
    assert list(two.classes_) == list(one.classes_)
    assert heads_of(two) == (TOPIC_HEAD,) and "no priority labels" in priority_note(two)


def test_each_head_learns_only_from_the_rows_that_carry_its_label(tickets):
    topics = tickets["topic"].where(tickets.index % 3 != 0)  # a third are priority-only corrections
    priorities = tickets["priority"].where(tickets.index % 2 == 0, "")  # half carry no priority
    model = _model().fit(tickets[["text"]], topics, priority=priorities)
    features = model.features_.transform(tickets[["text"]])
    expected = LogisticRegression(max_iter=500).fit(features[np.flatnonzero(topics.notna())], topics.dropna())
    np.testing.assert_allclose(model.topic_.coef_, expected.coef_, rtol=1e-9)
    assert set(model.priority_classes_) == set(tickets["priority"][tickets.index % 2 == 0])
    assert heads_of(model) == (TOPIC_HEAD, PRIORITY_HEAD) and priority_note(model) == ""


def test_predict_both_equals_each_head_pipeline(tickets):
    model = _model().fit(tickets[["text"]], tickets["topic"], priority=tickets["priority"])
    topic, priority = model.predict_both(tickets[["text"]].head(50))
    np.testing.assert_allclose(topic, model.head_pipeline(TOPIC_HEAD).predict_proba(tickets[["text"]].head(50)))
    np.testing.assert_allclose(priority, model.head_pipeline(PRIORITY_HEAD).predict_proba(tickets[["text"]].head(50)))
    np.testing.assert_allclose(priority.sum(axis=1), 1.0)


def test_a_single_priority_class_skips_the_head_and_says_why(tickets):
    model = _model().fit(tickets[["text"]], tickets["topic"], priority=["medium"] * len(tickets))
    assert heads_of(model) == (TOPIC_HEAD,) and "1 priority class" in model.priority_note_
    with pytest.raises(ValueError, match="no priority head"):
        model.predict_priority(tickets[["text"]])


def test_urgent_threshold_answers_urgent_below_the_likeliest_class():
    classes = ("high", "low", "medium", URGENT)
    proba = np.array([[0.5, 0.1, 0.1, 0.3], [0.1, 0.7, 0.1, 0.1]])
    assert list(decide_priority(proba, classes)) == ["high", "low"]
    assert list(decide_priority(proba, classes, urgent_threshold=0.25)) == [URGENT, "low"]


def test_an_older_plain_pipeline_is_a_one_head_version(tickets):
    one = Pipeline([("features", _features()), ("clf", LogisticRegression(max_iter=500))])
    assert heads_of(one) == (TOPIC_HEAD,) and "one-head version" in priority_note(one)
