"""Class probabilities from one hand-built feature row, with the fitted classifier's own arithmetic.

`predict_proba` on a one-row sparse matrix spends most of its time validating input and handling
matrices; the arithmetic is a few hundred multiply-adds. For the classifiers AutoML serves (see
retrain.ml.candidates) the same formulas are written here on (column indices, values):
- linear scores `coef[:, columns] @ values + intercept` of LinearSVC, RidgeClassifier,
  SGDClassifier and LogisticRegression;
- LogisticRegression: softmax (multinomial) or normalized expit (one-vs-rest);
- SGDClassifier: modified Huber's clipped scores, or log loss's normalized expit;
- CalibratedClassifierCV (sigmoid) over a linear model: per-class expit(-(a * score + b)),
  normalized, averaged over the calibrated members;
- ComplementNB / MultinomialNB: joint log-likelihood, normalized in log space;
- soft VotingClassifier: the (weighted) mean of its members' heads.
Only multiclass models (3+ classes) are compiled; for any other classifier `compile_head` returns
None and router.predictor hands the row to the classifier's own `predict_proba`. Either way a
scorer is used only after checking it against the full pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit, logsumexp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.svm import LinearSVC

from router.features_fast import Features

Head = Callable[[Features], np.ndarray]  # one feature row -> class probabilities (1-D, in `classes_` order)
LINEAR = (LinearSVC, RidgeClassifier, SGDClassifier, LogisticRegression)


def _multiclass(estimator: Any) -> bool:
    classes = getattr(estimator, "classes_", None)
    return classes is not None and len(classes) > 2


def linear_scores(estimator: Any) -> Head | None:
    """`decision_function` of a fitted multiclass linear model on one row, or None for anything else."""
    if type(estimator) not in LINEAR or not _multiclass(estimator) or not isinstance(estimator.coef_, np.ndarray):
        return None
    coef, intercept = estimator.coef_, estimator.intercept_
    return lambda features: coef[:, features[0]] @ features[1] + intercept


def _normalized(probabilities: np.ndarray) -> np.ndarray:
    """Rows summing to one; all zeros become uniform (what the calibrator and modified Huber both do)."""
    total = probabilities.sum()
    return probabilities / total if total != 0 else np.full_like(probabilities, 1 / probabilities.size)


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


def _ovr(scores: np.ndarray) -> np.ndarray:
    probabilities = expit(scores)
    return probabilities / probabilities.sum()


def _huber(scores: np.ndarray) -> np.ndarray:
    return _normalized((np.clip(scores, -1, 1) + 1.0) / 2.0)


def _linear_probabilities(estimator: Any) -> Head | None:
    """LogisticRegression's and SGDClassifier's `predict_proba` as a link on their linear scores."""
    scores = linear_scores(estimator)
    if scores is None:
        return None
    if type(estimator) is LogisticRegression:
        ovr = estimator.multi_class in ("ovr", "warn") or (
            estimator.multi_class == "auto" and estimator.solver in ("liblinear", "newton-cholesky"))
        link = _ovr if ovr else _softmax
    elif type(estimator) is SGDClassifier and estimator.loss in ("modified_huber", "log_loss"):
        link = _huber if estimator.loss == "modified_huber" else _ovr
    else:
        return None
    return lambda features: link(scores(features))


def _calibrated(estimator: Any) -> Head | None:
    """CalibratedClassifierCV with sigmoid calibration of linear models: the mean of its members' probabilities."""
    if type(estimator) is not CalibratedClassifierCV or estimator.method != "sigmoid" or not _multiclass(estimator):
        return None
    members = []
    for member in estimator.calibrated_classifiers_:
        scores = linear_scores(member.estimator)
        if scores is None or not np.array_equal(member.estimator.classes_, estimator.classes_):
            return None  # a member fit on fewer classes maps scores to columns: left to scikit-learn
        a = np.array([calibrator.a_ for calibrator in member.calibrators])
        b = np.array([calibrator.b_ for calibrator in member.calibrators])
        members.append((scores, a, b))

    def probabilities(features: Features) -> np.ndarray:
        total = sum(_normalized(expit(-(a * scores(features) + b))) for scores, a, b in members)
        return total / len(members)

    return probabilities


def _naive_bayes(estimator: Any) -> Head | None:
    """ComplementNB / MultinomialNB: exp(joint log-likelihood - its logsumexp)."""
    if type(estimator) not in (ComplementNB, MultinomialNB) or not _multiclass(estimator):
        return None
    log_prob = estimator.feature_log_prob_
    prior = estimator.class_log_prior_ if type(estimator) is MultinomialNB else 0.0

    def probabilities(features: Features) -> np.ndarray:
        joint = log_prob[:, features[0]] @ features[1] + prior
        return np.exp(joint - logsumexp(joint))

    return probabilities


def _soft_vote(estimator: Any) -> Head | None:
    """A soft VotingClassifier whose members all compile: their heads averaged with its weights (as `np.average`)."""
    if type(estimator) is not VotingClassifier or estimator.voting != "soft":
        return None
    heads = [compile_head(member) for member in estimator.estimators_]
    if any(head is None for head in heads):
        return None
    weights = None if estimator.weights is None else [
        weight for (_, member), weight in zip(estimator.estimators, estimator.weights, strict=True) if member != "drop"]
    return lambda features: np.average(np.asarray([head(features) for head in heads]), axis=0, weights=weights)


def compile_head(estimator: Any) -> Head | None:
    """The classifier's `predict_proba` written out for one row, or None when its shape is not one of the above."""
    for build in (_linear_probabilities, _calibrated, _naive_bayes, _soft_vote):
        head = build(estimator)
        if head is not None:
            return head
    return None
