"""The model search space: which features, which estimator, which regularisation grid.

Every candidate is sparse-friendly (trees were measured at 527 s for one selection, and they
serve slowly from 100k sparse columns) and predicts one ticket in about a millisecond. The
`_wc` candidates read word and character n-grams and weight classes by inverse frequency
(the small topics are where macro-F1 is lost); `vote_wc` is a soft-voting ensemble of a
class-weighted logistic regression and complement naive Bayes. `strength` is the estimator's
regularisation parameter (C for LR/SVM, alpha for NB/SGD/Ridge) that `tune_model` searches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sklearn.base import BaseEstimator
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

from retrain.ml.features import WORD, WORD_CHAR

BALANCED = "balanced"


@dataclass(frozen=True)
class Candidate:
    features: str  # features.WORD or features.WORD_CHAR
    build: Callable[[float, int], BaseEstimator]  # (strength, seed) -> unfitted estimator
    strength: float  # the default, what `compare_models` scores
    grid: tuple[float, ...]  # what `tune_model` searches


def _lr(strength: float, seed: int, class_weight: str | None = None) -> LogisticRegression:
    return LogisticRegression(C=strength, max_iter=1000, class_weight=class_weight, random_state=seed)


def _vote(strength: float, seed: int) -> VotingClassifier:
    return VotingClassifier([("lr", _lr(strength, seed, BALANCED)), ("nb", ComplementNB(alpha=0.3))], voting="soft")


CANDIDATES: dict[str, Candidate] = {
    "lr": Candidate(WORD, _lr, 10.0, (3.0, 10.0, 30.0)),
    "sgd": Candidate(WORD, lambda s, seed: SGDClassifier(loss="modified_huber", alpha=s, max_iter=50, tol=None,
                                                         random_state=seed), 2e-5, (1e-5, 2e-5, 5e-5)),
    "svm": Candidate(WORD, lambda s, seed: LinearSVC(C=s, dual="auto", random_state=seed), 0.5, (0.2, 0.5, 1.0)),
    "ridge": Candidate(WORD, lambda s, seed: RidgeClassifier(alpha=s, random_state=seed), 1.0, (0.3, 1.0, 3.0)),
    "nb": Candidate(WORD, lambda s, seed: ComplementNB(alpha=s), 0.3, (0.1, 0.3, 1.0)),
    "lr_wc": Candidate(WORD_CHAR, lambda s, seed: _lr(s, seed, BALANCED), 10.0, (3.0, 10.0, 30.0)),
    "svm_wc": Candidate(WORD_CHAR, lambda s, seed: LinearSVC(C=s, class_weight=BALANCED, dual="auto",
                                                             random_state=seed), 0.1, (0.05, 0.1, 0.3)),
    "vote_wc": Candidate(WORD_CHAR, _vote, 10.0, (3.0, 10.0, 30.0)),
}
