"""One model version, two answers: a ticket's topic and its priority, read from one set of text features.

A desk routes a ticket by topic and orders its queue by priority; both are read from the same words, so the text
is vectorized once (`features`) and each task has a head of its own (`topic`, `priority`), each chosen by PyCaret
for its task (`retrain.ml.automl`).

Why the class lives in `ticket_ab`: registered versions are cloudpickled, and a class pickles by reference (its
module path). The router's image holds `ticket_ab` and `router` only, so this is where it must be importable, and
its path `ticket_ab.twohead.TwoHeadModel` is a contract: renaming it would strand every registered version.

The topic head is the whole of a one-head model: `classes_`, `predict` and `predict_proba` answer the topic, so
every caller that reads a topic model (the router, CUPAC, the gate, batch scoring) reads this one unchanged, and
`head_pipeline` hands each head out as the `Pipeline(features -> clf)` shape the router compiles. The priority head
is optional: a training set without priorities (the real IT tickets) skips it, and `priority_note_` says why.
A registered plain `Pipeline` is an older one-head version (`heads_of`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline

from ticket_ab.schema import is_known

TOPIC_HEAD = "topic"
PRIORITY_HEAD = "priority"
URGENT = "urgent"


class TwoHeadModel(ClassifierMixin, BaseEstimator):
    """`features` (a transformer over the `text` column) shared by a `topic` head and an optional `priority` head.

    `urgent_threshold`: answer `urgent` whenever its probability reaches this, whatever class is likelier (None:
    the likeliest class). A missed urgent ticket costs more than a false alarm (`retrain.ml.priority`), and the
    threshold trades urgent precision for urgent recall; it is stated in the version's tags.
    """

    def __init__(self, features: Any = None, topic: Any = None, priority: Any = None,
                 urgent_threshold: float | None = None) -> None:
        self.features = features
        self.topic = topic
        self.priority = priority
        self.urgent_threshold = urgent_threshold

    def fit(self, X: pd.DataFrame, y: Any, priority: Any = None) -> TwoHeadModel:  # noqa: N803 (scikit-learn's names)
        """Vectorize every row once; fit the topic head on the rows with a topic (`y`) and the priority head on
        those with a `priority` (None, blank or NaN: unknown). With every topic known and no priority this is
        exactly `Pipeline(features -> topic).fit`: the topic head does not pay for the second one."""
        topics = _known(y, len(X))
        priorities = _known(priority, len(X))
        self.features_ = clone(self.features)
        rows = self.features_.fit_transform(X)
        self.topic_ = clone(self.topic).fit(_take(rows, topics), np.asarray(y, dtype=object)[topics].astype(str))
        self.classes_ = self.topic_.classes_
        self.priority_, self.priority_note_ = None, _skip_reason(self.priority, priority, priorities)
        if not self.priority_note_:
            values = np.asarray(priority, dtype=object)[priorities].astype(str)
            self.priority_ = clone(self.priority).fit(_take(rows, priorities), values)
        self.priority_classes_ = tuple(self.priority_.classes_) if self.priority_ is not None else ()
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Topic probabilities: a two-head model reads as its topic model to every topic caller."""
        return self.topic_.predict_proba(self.features_.transform(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The likeliest topic of each ticket."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def predict_both(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: N803
        """(topic probabilities, priority probabilities or None without a priority head), vectorizing once."""
        rows = self.features_.transform(X)
        return self.topic_.predict_proba(rows), (self.priority_.predict_proba(rows) if self.priority_ else None)

    def predict_priority(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Each ticket's priority by `decide_priority` (the router's rule too)."""
        if self.priority_ is None:
            raise ValueError(f"this model has no priority head: {self.priority_note_}")
        proba = self.priority_.predict_proba(self.features_.transform(X))
        return decide_priority(proba, self.priority_classes_, self.urgent_threshold)

    def head_pipeline(self, head: str = TOPIC_HEAD) -> Pipeline:
        """One head as the one-head shape `Pipeline(features -> clf)`, sharing the fitted objects (no copy)."""
        fitted = {TOPIC_HEAD: self.topic_, PRIORITY_HEAD: self.priority_}[head]
        if fitted is None:
            raise ValueError(f"this model has no {head} head: {self.priority_note_}")
        return Pipeline([("features", self.features_), ("clf", fitted)])


def probabilities(model: Any, tickets: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """(topic probabilities, priority probabilities or None) of any registered model, one-head or two: the one
    place that tells the two shapes apart for batch scoring, drift, ONNX parity and the router's batches."""
    if PRIORITY_HEAD in heads_of(model):
        return model.predict_both(tickets)
    return model.predict_proba(tickets), None


def answers(model: Any, topic_proba: np.ndarray,
            priority_proba: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The labels `probabilities` answer: each topic's likeliest class, and each priority by `decide_priority`
    (None without a priority head). One pass over the features gives both: `answers(model, *probabilities(...))`."""
    topics = np.asarray(model.classes_)[np.argmax(topic_proba, axis=1)]
    if priority_proba is None:
        return topics, None
    return topics, decide_priority(priority_proba, model.priority_classes_, model.urgent_threshold)


def decide_priority(proba: np.ndarray, classes: tuple[str, ...] | np.ndarray,
                    urgent_threshold: float | None = None) -> np.ndarray:
    """The priority of each row of `proba` (n x classes): `urgent` when its probability reaches `urgent_threshold`,
    else the likeliest class. One rule for the model, the router and the gate."""
    return np.asarray(classes, dtype=object)[decide_priority_index(proba, classes, urgent_threshold)]


def decide_priority_index(proba: np.ndarray, classes: tuple[str, ...] | np.ndarray,
                          urgent_threshold: float | None = None) -> np.ndarray:
    """`decide_priority` as column indices of `proba`: the router reads the answer's probability at it."""
    picked = np.argmax(proba, axis=1)
    names = list(classes)
    if urgent_threshold is None or URGENT not in names:
        return picked
    urgent = names.index(URGENT)
    return np.where(proba[:, urgent] >= urgent_threshold, urgent, picked)


def heads_of(model: Any) -> tuple[str, ...]:
    """The heads a registered model answers: a plain Pipeline (an older version) or a model whose priority head
    was skipped answers the topic only."""
    if isinstance(model, TwoHeadModel) and getattr(model, "priority_", None) is not None:
        return TOPIC_HEAD, PRIORITY_HEAD
    return (TOPIC_HEAD,)


def priority_note(model: Any) -> str:
    """Why a model answers no priority ('' when it does)."""
    if not isinstance(model, TwoHeadModel):
        return "a one-head version (trained before priorities were predicted)"
    return getattr(model, "priority_note_", "")


def _known(values: Any, n: int) -> np.ndarray:
    """A mask of the rows whose value is known (not None, NaN or blank)."""
    if values is None:
        return np.zeros(n, dtype=bool)
    return is_known(pd.Series(np.asarray(values, dtype=object))).to_numpy()


def _skip_reason(head: Any, values: Any, known: np.ndarray) -> str:
    """Why the priority head is not trained ('' when it is)."""
    if head is None:
        return "no priority head was asked for"
    if values is None or not known.any():
        return "the training data has no priority labels"
    classes = pd.Series(np.asarray(values, dtype=object)[known]).astype(str).nunique()
    return "" if classes >= 2 else f"the training data has {classes} priority class; a head needs at least 2"


def _take(rows: Any, mask: np.ndarray) -> Any:
    """The masked rows of a feature matrix (sparse or dense); the matrix itself when every row is kept."""
    return rows if mask.all() else rows[np.flatnonzero(mask)]
