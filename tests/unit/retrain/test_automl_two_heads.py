"""Two heads from one selection: the topic as before, the priority on the topic winner's features."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from load_test.simulate.generator import generate
from retrain.ml.automl import AutoMLError, check_trainable, same_features, select_model, served_pipeline
from retrain.ml.candidates import CANDIDATES
from retrain.ml.priority import urgent_threshold_for_recall
from ticket_ab.schema import PRIORITIES
from ticket_ab.twohead import TwoHeadModel, heads_of

pytestmark = pytest.mark.slow  # fits models: `make test` runs it, `make check` does not

NAMES = ["nb", "svm", "lr_wc"]  # two word candidates and a word+char one: the priority search must keep one kind


@pytest.fixture(scope="module")
def tickets():
    return generate("baseline", 300, 3)[["text", "topic", "priority"]]


@pytest.fixture(scope="module")
def two_heads(tickets):
    return select_model(tickets, candidates=NAMES, folds=3, seed=0, urgent_recall=0.95)


@pytest.fixture(scope="module")
def one_head(tickets):
    return select_model(tickets[["text", "topic"]], candidates=["nb", "svm"], folds=3, seed=0)


def test_the_topic_head_does_not_pay_for_the_second_one(tickets, one_head):
    # No priority column: the topic head is the topic winner's one-head pipeline fit on the same rows.
    alone = served_pipeline(one_head.winner, one_head.strength, 0).fit(tickets[["text"]], tickets["topic"])
    sample = generate("baseline", 200, 11)[["text"]]
    assert isinstance(one_head.pipeline, TwoHeadModel)
    assert list(one_head.pipeline.classes_) == list(alone.classes_)
    np.testing.assert_allclose(one_head.pipeline.predict_proba(sample), alone.predict_proba(sample), rtol=0,
                               atol=1e-12)


def test_without_priorities_the_head_is_skipped_and_says_why(one_head):
    assert heads_of(one_head.pipeline) == ("topic",) and one_head.heads == "topic"
    assert one_head.priority_winner is None and one_head.priority_leaderboard is None
    assert one_head.priority_note == one_head.pipeline.priority_note_ == "the training data has no 'priority' column"


def test_the_priority_head_is_chosen_among_the_topic_winners_feature_kind(two_heads):
    kind = CANDIDATES[two_heads.winner].features
    compared = list(two_heads.priority_leaderboard["candidate"])
    assert compared and {CANDIDATES[name].features for name in compared} == {kind}
    assert set(compared) == set(same_features(NAMES, two_heads.winner))
    assert two_heads.priority_winner == compared[0]
    assert 0.5 < two_heads.priority_cv_macro_f1 <= 1.0 and two_heads.priority_note == ""
    assert two_heads.priority_trainable  # the gate holds a lost head against a candidate only when this is true


def test_both_heads_answer_from_one_vectorizer(two_heads, tickets):
    model = two_heads.pipeline
    assert heads_of(model) == ("topic", "priority") and two_heads.heads == "topic,priority"
    assert model.priority_classes_ == tuple(sorted(PRIORITIES))
    topic, priority = model.predict_both(tickets[["text"]].head(7))
    np.testing.assert_array_equal(topic, model.predict_proba(tickets[["text"]].head(7)))
    assert priority.shape == (7, 4) and np.allclose(priority.sum(axis=1), 1.0)


def test_the_urgent_threshold_is_read_from_out_of_fold_probabilities_of_the_training_rows(two_heads, tickets):
    pipeline = served_pipeline(two_heads.priority_winner, two_heads.priority_strength, 0)
    proba = cross_val_predict(pipeline, tickets[["text"]], tickets["priority"], cv=StratifiedKFold(3),
                              method="predict_proba")
    expected = urgent_threshold_for_recall(proba, tickets["priority"].to_numpy(), sorted(PRIORITIES), 0.95)
    assert two_heads.urgent_threshold == expected == two_heads.pipeline.urgent_threshold


@pytest.mark.parametrize(("priorities", "reason"), [
    (lambda n: ["high"] * n, "at least 2 priority classes, got ['high']"),
    (lambda n: ["high"] * (n - 1) + ["low"], "too few: {'low': 1}"),
    (lambda n: [np.nan] * n, "no training ticket has a priority"),
])
def test_a_priority_too_thin_to_select_skips_the_head_and_keeps_the_topic(tickets, priorities, reason):
    frame = tickets.assign(priority=priorities(len(tickets)))
    result = select_model(frame, candidates=["nb"], folds=3, seed=0)
    assert reason in result.priority_note and reason in result.pipeline.priority_note_
    assert heads_of(result.pipeline) == ("topic",) and result.priority_winner is None
    assert not result.priority_trainable


def test_priority_only_rows_train_the_priority_head_and_not_the_topic(tickets):
    frame = tickets.copy()
    frame.loc[:59, "topic"] = np.nan  # priority-only feedback
    frame.loc[60:79, "priority"] = " "  # topic-only rows
    result = select_model(frame, candidates=["nb"], folds=3, seed=0)
    assert heads_of(result.pipeline) == ("topic", "priority")
    assert set(result.pipeline.classes_) == set(tickets.loc[60:, "topic"])
    assert "nan" not in set(result.pipeline.classes_) and "" not in result.pipeline.priority_classes_


def test_check_trainable_names_the_target():
    frame = pd.DataFrame({"priority": ["low"] * 5 + ["urgent"]})
    with pytest.raises(AutoMLError, match=r"each priority needs at least 3 tickets .* too few: \{'urgent': 1\}"):
        check_trainable(frame, 3, "priority")
