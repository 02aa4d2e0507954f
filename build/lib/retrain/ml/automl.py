"""PyCaret picks the estimator; scikit-learn serves it.

PyCaret's own text preprocessing densifies TF-IDF (7k float64 columns, 2 GB for 10k tickets) and
its finalized pipeline is too slow to serve, so each candidate handed to `compare_models` is
already a lean `text -> TF-IDF -> estimator` Pipeline and PyCaret runs with `preprocess=False`:
it cross-validates, ranks by macro-F1 under a time budget, and we refit the winner with plain
scikit-learn. The registered artifact therefore needs neither PyCaret nor its preprocessing.

PyCaret logs to `logs.log` in the working directory, opened as soon as it is imported: the path is
pointed at the null device before the import (unless PYCARET_CUSTOM_LOGGING_PATH is set), and
`setup` logs to our `automl.pycaret` logger instead, warnings and up.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.metrics import f1_score
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from retrain.contracts.log import get_logger, kv
from retrain.contracts.schema import TEXT, TOPIC
from retrain.ml.features import text_pipeline

os.environ.setdefault("PYCARET_CUSTOM_LOGGING_PATH", os.devnull)
from pycaret.classification import ClassificationExperiment  # noqa: E402  (after the log path is set)

log = get_logger("automl")
pycaret_log = log.getChild("pycaret")
pycaret_log.setLevel(logging.WARNING)  # setup() narrates every step at INFO

# Candidates: sparse-friendly linear models that fit 10k tickets in seconds. Trees were measured
# at 527 s for the same selection, so they are not offered.
CANDIDATES: dict[str, Callable[[int], BaseEstimator]] = {
    "lr": lambda seed: LogisticRegression(C=10.0, max_iter=1000, random_state=seed),
    "sgd": lambda seed: SGDClassifier(loss="modified_huber", alpha=2e-5, max_iter=50, tol=None, random_state=seed),
    "svm": lambda seed: LinearSVC(C=0.5, dual="auto", random_state=seed),
    "ridge": lambda seed: RidgeClassifier(alpha=1.0, random_state=seed),
    "nb": lambda seed: ComplementNB(alpha=0.3),
}
MACRO_F1 = "Macro F1"


class AutoMLError(ValueError):
    """The training data or the request cannot produce a model (says which and why)."""


@dataclass
class AutoMLResult:
    pipeline: Pipeline  # refit on all the training data; has predict_proba and classes_ = topics
    winner: str  # key of CANDIDATES
    leaderboard: pd.DataFrame
    cv_macro_f1: float
    select_seconds: float
    fit_seconds: float


def _macro_f1(y_true, y_pred, sample_weight=None) -> float:
    # PyCaret's scorer always passes `sample_weight` and turns any TypeError into a silent 0.0,
    # which is why `add_metric(..., average="macro")` on f1_score "scores" 0: accept it here.
    return float(f1_score(y_true, y_pred, average="macro", sample_weight=sample_weight, zero_division=0))


def check_trainable(df: pd.DataFrame, folds: int) -> None:
    """Fail early, in words, on data that cross-validation would choke on."""
    counts = df[TOPIC].value_counts()
    if len(counts) < 2:
        raise AutoMLError(f"training needs at least 2 topics, got {list(counts.index)}")
    thin = counts[counts < folds]
    if not thin.empty:
        raise AutoMLError(
            f"each topic needs at least {folds} tickets for {folds}-fold selection; too few: {thin.to_dict()}"
        )


def with_probabilities(pipeline: Pipeline) -> Pipeline:
    """Calibrate an estimator that only has a decision function (LinearSVC, Ridge)."""
    clf = pipeline.named_steps["clf"]
    if hasattr(clf, "predict_proba"):
        return pipeline
    # ensemble=False: one estimator fit on all rows, calibrated on out-of-fold scores. The default
    # averages three estimators each fit on 2/3 of the data, which cost 0.4 points of macro-F1.
    calibrated = CalibratedClassifierCV(clf, method="sigmoid", cv=3, ensemble=False)
    return Pipeline([("features", pipeline.named_steps["features"]), ("clf", calibrated)])


def select_model(
    df: pd.DataFrame,
    *,
    candidates: list[str] | None = None,
    folds: int = 3,
    budget_s: float = 180.0,
    seed: int = 0,
) -> AutoMLResult:
    """Cross-validate the candidates with PyCaret, then refit the macro-F1 winner with sklearn."""
    names = list(candidates or CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise AutoMLError(f"unknown candidate models {unknown}; known: {sorted(CANDIDATES)}")
    data = df[[TEXT, TOPIC]].reset_index(drop=True)
    check_trainable(data, folds)
    started = time.perf_counter()
    log.info(kv("automl_select_start", rows=len(data), candidates=",".join(names), folds=folds, budget_s=budget_s))
    exp = ClassificationExperiment()
    exp.setup(
        data=data,
        target=TOPIC,
        preprocess=False,
        # compare_models only cross-validates `data`; PyCaret insists on a hold-out of its own,
        # so hand it one row per topic rather than losing a share of the training tickets.
        test_data=data.groupby(TOPIC).head(1),
        index=False,
        fold=folds,
        fold_strategy="stratifiedkfold",
        session_id=seed,
        n_jobs=1,
        verbose=False,
        html=False,
        log_experiment=False,
        system_log=pycaret_log,
    )
    exp.add_metric("macro_f1", MACRO_F1, _macro_f1, target="pred", greater_is_better=True)
    exp.remove_metric("auc")  # needs probabilities that svm/ridge lack; it only logs warnings for them
    pipelines = [text_pipeline(CANDIDATES[n](seed)) for n in names]
    best = exp.compare_models(
        include=pipelines, sort=MACRO_F1, n_select=1, budget_time=budget_s / 60.0, errors="ignore", verbose=False
    )
    leaderboard = exp.pull().reset_index(drop=True)
    select_seconds = time.perf_counter() - started
    if best is None or (isinstance(best, list) and not best):
        raise AutoMLError("no candidate finished within the time budget; raise TICKET_AB_AUTOML_BUDGET_S")
    winner_type = type(best.named_steps["clf"])
    winner = next(n for n, p in zip(names, pipelines, strict=True) if type(p.named_steps["clf"]) is winner_type)
    by_display = _display_names(exp, names, pipelines)
    leaderboard.insert(0, "candidate", [by_display.get(m, m) for m in leaderboard["Model"]])

    started = time.perf_counter()
    pipeline = with_probabilities(clone(text_pipeline(CANDIDATES[winner](seed))))
    pipeline.fit(data[[TEXT]], data[TOPIC].astype(str))
    fit_seconds = time.perf_counter() - started
    cv_f1 = float(leaderboard.loc[0, MACRO_F1])
    log.info(kv("automl_select_done", winner=winner, cv_macro_f1=cv_f1, select_s=select_seconds, fit_s=fit_seconds))
    return AutoMLResult(pipeline, winner, leaderboard, cv_f1, select_seconds, fit_seconds)


def _display_names(exp, names: list[str], pipelines: list[Pipeline]) -> dict[str, str]:
    """PyCaret names a custom estimator by its model library entry (SGDClassifier is 'SVM - Linear
    Kernel'), else by class name: map those display names back to our candidate keys."""
    library = exp.models()
    pairs = zip(library["Reference"], library["Name"], strict=True)
    by_class = {str(ref).rsplit(".", 1)[-1]: name for ref, name in pairs}
    out = {}
    for key, pipe in zip(names, pipelines, strict=True):
        cls = type(pipe.named_steps["clf"]).__name__
        out[by_class.get(cls, cls)] = key
    return out
