"""A priority head's figures: macro-F1 and urgent recall/precision as scikit-learn counts them, urgent read as
low, the ordinal confusion cost, and the urgent threshold that buys a target recall."""

import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

from retrain.ml.priority import COST, confusion_cost, priority_scores, urgent_threshold_for_recall
from ticket_ab.schema import PRIORITIES
from ticket_ab.twohead import decide_priority

CLASSES = tuple(sorted(PRIORITIES))  # a fitted head's column order


@pytest.fixture
def answers():
    rng = np.random.default_rng(3)
    truth = rng.choice(PRIORITIES, 500, p=[0.3, 0.4, 0.2, 0.1])
    predicted = np.where(rng.random(500) < 0.7, truth, rng.choice(PRIORITIES, 500))
    return truth, predicted


def test_scores_agree_with_scikit_learn(answers):
    truth, predicted = answers
    scores = priority_scores(truth, predicted)
    assert scores.macro_f1 == pytest.approx(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro"))
    assert scores.urgent_recall == pytest.approx(recall_score(truth, predicted, labels=["urgent"], average="micro"))
    assert scores.urgent_precision == pytest.approx(
        precision_score(truth, predicted, labels=["urgent"], average="micro"))
    matrix = confusion_matrix(truth, predicted, labels=list(PRIORITIES))
    urgent, low = PRIORITIES.index("urgent"), PRIORITIES.index("low")
    assert scores.urgent_n == matrix[urgent].sum() and scores.urgent_as_low_count == matrix[urgent, low] > 0
    assert scores.urgent_as_low == pytest.approx(matrix[urgent, low] / matrix[urgent].sum())
    assert scores.n == 500


def test_confusion_cost_is_the_matrix_weighted_mean_and_missing_urgent_costs_more_than_the_reverse(answers):
    truth, predicted = answers
    matrix = confusion_matrix(truth, predicted, labels=list(PRIORITIES))
    assert confusion_cost(truth, predicted) == pytest.approx((matrix * np.array(list(COST.values()))).sum() / 500)
    for lower, higher in [("low", "urgent"), ("medium", "urgent"), ("low", "high")]:
        assert confusion_cost([higher], [lower]) > confusion_cost([lower], [higher]) > 0
    assert confusion_cost(truth, truth) == 0.0


def test_macro_f1_averages_over_the_true_priorities_so_a_stray_prediction_of_an_absent_class_costs_one_ticket():
    truth = np.array(["low"] * 10 + ["medium"] * 10 + ["high"] * 10)
    stray = truth.copy()
    stray[0] = "urgent"  # no ticket is urgent: one wrong answer, not a class with an F1 of 0
    wrong = truth.copy()
    wrong[0] = "medium"  # the same one ticket wrong, into a class the tickets have
    assert priority_scores(truth, stray).macro_f1 == pytest.approx(
        f1_score(truth, stray, labels=["high", "low", "medium"], average="macro"))
    assert priority_scores(truth, stray).macro_f1 > f1_score(truth, stray, average="macro") + 0.2  # the union's
    assert priority_scores(truth, stray).macro_f1 > priority_scores(truth, wrong).macro_f1  # no class was hurt more


def test_figures_without_their_tickets_are_nan_and_unknown_priorities_have_no_cost():
    scores = priority_scores(np.array(["low", "high"]), np.array(["low", "low"]))
    assert scores.urgent_n == 0 and math.isnan(scores.urgent_as_low) and math.isnan(scores.urgent_recall)
    assert math.isnan(scores.urgent_precision)
    assert math.isnan(priority_scores(np.array([]), np.array([])).macro_f1)
    with pytest.raises(ValueError, match=r"no cost: \['P1'\]"):
        confusion_cost(["P1"], ["low"])


def _recall(proba, truth, threshold):
    return recall_score(truth, decide_priority(proba, CLASSES, threshold), labels=["urgent"], average="micro")


@pytest.mark.parametrize("target", [0.8, 0.9, 0.97, 1.0])
def test_the_urgent_threshold_is_the_highest_reaching_the_target_recall(target):
    rng = np.random.default_rng(5)
    truth = rng.choice(PRIORITIES, 400, p=[0.3, 0.4, 0.2, 0.1])
    proba = rng.dirichlet(np.ones(4), 400)
    proba[truth == "urgent", CLASSES.index("urgent")] += 0.3  # urgent tickets lean urgent, often not enough
    proba /= proba.sum(axis=1, keepdims=True)
    assert _recall(proba, truth, None) < target  # the argmax alone misses the target
    threshold = urgent_threshold_for_recall(proba, truth, CLASSES, target)
    assert _recall(proba, truth, threshold) >= target
    assert _recall(proba, truth, np.nextafter(threshold, 1.0)) < target  # any higher threshold falls short


def test_no_threshold_when_the_likeliest_class_already_reaches_the_recall_and_errors_in_words():
    truth = np.array(["urgent", "urgent", "low"])
    proba = np.array([[0.0, 0.1, 0.1, 0.8], [0.0, 0.1, 0.1, 0.8], [0.1, 0.8, 0.1, 0.0]])
    assert urgent_threshold_for_recall(proba, truth, CLASSES, 1.0) is None
    with pytest.raises(ValueError, match="'urgent' class"):
        urgent_threshold_for_recall(proba, np.array(["low"] * 3), CLASSES, 0.9)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        urgent_threshold_for_recall(proba, truth, CLASSES, 0.0)
