"""PyCaret picks the estimator and tunes its regularisation; scikit-learn serves it.

PyCaret's own text preprocessing densifies TF-IDF (7k float64 columns, 2 GB for 10k tickets) and
its finalized pipeline is too slow to serve, so PyCaret runs with `preprocess=False` on
`TextModel`s: one estimator per candidate that builds the lean `text -> features -> classifier`
pipeline in `fit`. PyCaret cross-validates them (`compare_models`, ranked by macro-F1 under a
time budget), then grid-searches the winner's regularisation strength (`tune_model`, kept only if
it beats the untuned score). A ticket's priority is selected the same way, as a second head on the
topic winner's features. The winners are refit as one `ticket_ab.twohead.TwoHeadModel` of plain
scikit-learn parts, so the registered artifact needs neither PyCaret nor `TextModel`. (A Pipeline
handed to `tune_model` would be cut down to its last step, which cannot read text: hence the wrapper.)

The candidates span word and word+character n-grams, class weighting, linear models and a
soft-voting ensemble; features are cached per fold (joblib) so each fold is vectorized once.
With `engine="dask"` (TICKET_AB_AUTOML_ENGINE) the cross-validation fans out to a dask.distributed
cluster instead, one task per candidate through PyCaret's Fugue backend (retrain.ml.cluster); the
workers share no feature cache, and tuning and the final fit stay in this process.

PyCaret's own `logs.log` goes to the null device (set in `retrain.ml` before any PyCaret import), and
`setup` logs to our `automl.pycaret` logger instead, warnings and up.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pycaret.classification import ClassificationExperiment
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from retrain.ml.candidates import CANDIDATES, Candidate
from retrain.ml.cluster import WholeFugueBackend, open_engine
from retrain.ml.evaluate import labelled
from retrain.ml.features import text_pipeline
from retrain.ml.priority import urgent_threshold_for_recall
from ticket_ab.log import get_logger, kv
from ticket_ab.schema import PRIORITY, TEXT, TOPIC
from ticket_ab.settings import AutoMLEngine
from ticket_ab.twohead import TwoHeadModel, heads_of

log = get_logger("automl")
pycaret_log = log.getChild("pycaret")
pycaret_log.setLevel(logging.WARNING)  # setup() narrates every step at INFO

MACRO_F1 = "Macro F1"


class AutoMLError(ValueError):
    """The training data or the request cannot produce a model (says which and why)."""


@dataclass
class AutoMLResult:
    pipeline: TwoHeadModel  # refit on all the training data; predict_proba and classes_ answer the topic
    winner: str  # key of CANDIDATES: the topic head's
    leaderboard: pd.DataFrame
    cv_macro_f1: float
    select_seconds: float
    fit_seconds: float
    strength: float | None = None  # the winner's regularisation strength (the tuned one when tuning won)
    tuning: dict[float, float] = field(default_factory=dict)  # strength -> cv macro-F1 of the grid search
    priority_winner: str | None = None  # None: no priority head (`priority_note` says why)
    priority_leaderboard: pd.DataFrame | None = None
    priority_cv_macro_f1: float | None = None
    priority_note: str = ""  # why the priority head was skipped ('' when it was trained)
    priority_strength: float | None = None
    priority_tuning: dict[float, float] = field(default_factory=dict)
    urgent_threshold: float | None = None  # stored on the model too (TICKET_AB_PRIORITY_URGENT_RECALL)
    priority_trainable: bool = False  # the data could train a priority head (`priority_rows`: the gate reads it)

    @property
    def heads(self) -> str:
        """The heads the model answers, as tagged: `topic` or `topic,priority`."""
        return ",".join(heads_of(self.pipeline))


class TextModel(ClassifierMixin, BaseEstimator):
    """One candidate as PyCaret sees it: its hyperparameters are its own, the pipeline is built in `fit`.

    It is the pipeline as served, calibration included: a LinearSVC's calibrated argmax is not its raw one
    (per-class sigmoids, then normalized), and on real tickets it scored 0.3 points of macro-F1 higher, so
    cross-validating the raw scores ranked the SVMs below what they serve and picked a weaker candidate.
    """

    def __init__(self, candidate: str = "lr", strength: float | None = None, seed: int = 0,
                 memory: str | None = None) -> None:
        self.candidate = candidate
        self.strength = strength
        self.seed = seed
        self.memory = memory

    def fit(self, X: pd.DataFrame, y, **_: object) -> TextModel:  # noqa: N803 (scikit-learn's names)
        self.pipeline_ = fold_calibrated(served_pipeline(self.candidate, self.strength, self.seed, self.memory), y)
        self.pipeline_.fit(X, y)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict(self, X: pd.DataFrame):  # noqa: N803
        return self.pipeline_.predict(X)


def served_pipeline(name: str, strength: float | None = None, seed: int = 0, memory: str | None = None) -> Pipeline:
    """A candidate's plain scikit-learn pipeline with probabilities: what selection scores and the router serves."""
    spec: Candidate = CANDIDATES[name]
    pipeline = text_pipeline(spec.build(spec.strength if strength is None else strength, seed), spec.features, memory)
    return with_probabilities(pipeline)


def fold_calibrated(pipeline: Pipeline, y, outer_folds: int = 1) -> Pipeline:
    """`pipeline` with its calibration's folds cut to the rarest class it will be fit on: `y`, or with `outer_folds`
    the training part of a stratified fold of `y`. A topic `check_trainable` lets through with `folds` tickets has
    only `folds - 1` in a selection fold's training part, and 3-fold calibration there would fail (PyCaret scores a
    failed fold 0 and says nothing). The served model is fit on every row and keeps its 3 folds."""
    clf = pipeline.named_steps["clf"]
    if isinstance(clf, CalibratedClassifierCV) and isinstance(clf.cv, int):
        counts = pd.Series(y).value_counts()
        if outer_folds > 1:  # a stratified fold holds out at most ceil(n / folds) of a class's n rows
            counts = counts - np.ceil(counts / outer_folds)
        clf.set_params(cv=max(2, min(clf.cv, int(counts.min()))))
    return pipeline


def _macro_f1(y_true, y_pred, sample_weight=None) -> float:
    # PyCaret's scorer always passes `sample_weight` and turns any TypeError into a silent 0.0,
    # which is why `add_metric(..., average="macro")` on f1_score "scores" 0: accept it here.
    return float(f1_score(y_true, y_pred, average="macro", sample_weight=sample_weight, zero_division=0))


def check_trainable(df: pd.DataFrame, folds: int, target: str = TOPIC) -> None:
    """Fail early, in words, on data that cross-validation would choke on."""
    counts = df[target].value_counts()
    if len(counts) < 2:
        raise AutoMLError(f"training needs at least 2 {target} classes, got {list(counts.index)}")
    thin = counts[counts < folds]
    if not thin.empty:
        raise AutoMLError(
            f"each {target} needs at least {folds} tickets for {folds}-fold selection; too few: {thin.to_dict()}"
        )


def with_probabilities(pipeline: Pipeline) -> Pipeline:
    """Calibrate an estimator that only has a decision function (LinearSVC, Ridge)."""
    clf = pipeline.named_steps["clf"]
    if hasattr(clf, "predict_proba"):
        return pipeline
    # ensemble=False: one estimator fit on all rows, calibrated on out-of-fold scores. The default
    # averages three estimators each fit on 2/3 of the data, which cost 0.4 points of macro-F1.
    calibrated = CalibratedClassifierCV(clf, method="sigmoid", cv=3, ensemble=False)
    return Pipeline([("features", pipeline.named_steps["features"]), ("clf", calibrated)], memory=pipeline.memory)


def _experiment(data: pd.DataFrame, folds: int, seed: int, target: str = TOPIC) -> ClassificationExperiment:
    exp = ClassificationExperiment()
    exp.setup(
        data=data,
        target=target,
        preprocess=False,
        # compare_models only cross-validates `data`; PyCaret insists on a hold-out of its own,
        # so hand it one row per class rather than losing a share of the training tickets.
        test_data=data.groupby(target).head(1),
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
    return exp


@dataclass(frozen=True)
class Selection:
    """One task's PyCaret selection: the winner, its leaderboard, its strength and cv macro-F1."""

    winner: str
    leaderboard: pd.DataFrame
    cv_macro_f1: float
    strength: float | None
    tuning: dict[float, float]


def select_model(
    df: pd.DataFrame,
    *,
    candidates: list[str] | None = None,
    folds: int = 3,
    budget_s: float = 180.0,
    tune_min_rows: int = 3000,
    seed: int = 0,
    engine: AutoMLEngine = "local",
    scheduler: str = "",
    urgent_recall: float | None = None,
) -> AutoMLResult:
    """Select a head per task with PyCaret (compare, tune), then fit both on one TF-IDF as a `TwoHeadModel`.

    The topic is selected first, exactly as a one-head model was, on the rows with a topic. The priority
    head is selected second, on the rows with a priority, among the candidates that read the topic
    winner's features (the two heads share one vectorizer); it is skipped, with the reason in
    `priority_note`, without a `priority` column, with fewer than 2 priorities, or with a priority too
    rare for the folds. Budget: the topic selection has all of `budget_s`, as before; the priority
    selection has what is left of it, and with nothing left it still cross-validates its first candidate,
    the topic winner's estimator (PyCaret always scores one), so a slow topic search never costs the head.

    Tuning needs `tune_min_rows` tickets: on fewer, cross-validated macro-F1 moves by more than the
    strengths of the grid differ, so the search would pick noise (and cost a dozen fits).
    `engine="dask"` cross-validates the candidates on the dask.distributed cluster at `scheduler`
    (see retrain.ml.cluster); tuning and the final fit stay here, the leaderboard is the same.
    `urgent_recall` (TICKET_AB_PRIORITY_URGENT_RECALL): store on the model the urgent threshold that
    reaches this urgent recall on out-of-fold probabilities of the training rows (of the priority winner's own
    pipeline: approximate for the served head, see `_urgent_threshold`).
    """
    names = list(candidates or CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise AutoMLError(f"unknown candidate models {unknown}; known: {sorted(CANDIDATES)}")
    frame = df.reset_index(drop=True)
    data = frame.loc[labelled(frame, TOPIC), [TEXT, TOPIC]].reset_index(drop=True)
    check_trainable(data, folds)
    rows, note = priority_rows(frame, folds)
    trainable = not note
    started = time.perf_counter()
    log.info(kv("automl_select_start", rows=len(data), priority_rows=len(rows), candidates=",".join(names),
                folds=folds, budget_s=budget_s, engine=engine))
    with tempfile.TemporaryDirectory(prefix="automl-features-") as cache:
        with open_engine(engine, scheduler) as parallel:  # before setup: an unreachable cluster fails fast
            search = {"folds": folds, "seed": seed, "cache": cache, "parallel": parallel,
                      "tune_min_rows": tune_min_rows, "started": started, "budget_s": budget_s}
            topic = _select(data, TOPIC, names, **search)
            priority, note = (None, note) if note else _select_priority(rows, names, topic.winner, search)
        threshold = _urgent_threshold(rows, priority, folds, seed, urgent_recall)
        select_seconds = time.perf_counter() - started
        started = time.perf_counter()
        model = two_head_model(frame, topic, priority, seed, threshold, note)
    fit_seconds = time.perf_counter() - started
    _log_done(topic, priority, note, threshold, select_seconds, fit_seconds)
    return AutoMLResult(model, topic.winner, topic.leaderboard, topic.cv_macro_f1, select_seconds, fit_seconds,
                        topic.strength, topic.tuning, **_priority_fields(priority, note, threshold),
                        priority_trainable=trainable)


def priority_rows(frame: pd.DataFrame, folds: int) -> tuple[pd.DataFrame, str]:
    """(the rows with a priority as `text, priority`, why the priority head is skipped or '')."""
    known = labelled(frame, PRIORITY)
    rows = frame.loc[known, [TEXT, PRIORITY]] if PRIORITY in frame else frame.loc[known, [TEXT]]
    rows = rows.reset_index(drop=True)
    if PRIORITY not in frame:
        return rows, "the training data has no 'priority' column"
    if rows.empty:
        return rows, "no training ticket has a priority"
    rows[PRIORITY] = rows[PRIORITY].astype(str).str.strip()
    try:
        check_trainable(rows, folds, PRIORITY)
    except AutoMLError as exc:
        return rows, str(exc)
    return rows, ""


def same_features(names: list[str], winner: str) -> list[str]:
    """The candidates that read the topic winner's features, the winner's estimator first."""
    kind = CANDIDATES[winner].features
    return [winner, *(n for n in names if n != winner and CANDIDATES[n].features == kind)]


def _select(data: pd.DataFrame, target: str, names: list[str], *, folds: int, seed: int, cache: str,
            parallel: WholeFugueBackend | None, tune_min_rows: int, started: float, budget_s: float) -> Selection:
    """Compare `names` on `target` within what is left of `budget_s` since `started`, then tune the winner."""
    left_s = max(budget_s - (time.perf_counter() - started), 1e-3)  # PyCaret reads 0 as no budget at all
    exp = _experiment(data, folds, seed, target)
    leaderboard = _compare(exp, names, seed, cache, left_s, parallel)
    winner, cv_f1 = str(leaderboard.loc[0, "candidate"]), float(leaderboard.loc[0, MACRO_F1])
    remaining_s = budget_s - (time.perf_counter() - started) if len(data) >= tune_min_rows else 0.0
    strength, tuning, cv_f1 = _tune(exp, winner, seed, cache, cv_f1, leaderboard, remaining_s)
    log.info(kv("automl_selected", target=target, winner=winner, strength=strength, cv_macro_f1=cv_f1,
                rows=len(data)))
    return Selection(winner, leaderboard, cv_f1, strength, tuning)


def _select_priority(rows: pd.DataFrame, names: list[str], topic_winner: str,
                     search: dict[str, Any]) -> tuple[Selection | None, str]:
    """The priority head's selection, or none and why: a priority search that fails leaves the topic head
    (the gate then judges the version without a priority head)."""
    try:
        return _select(rows, PRIORITY, same_features(names, topic_winner), **search), ""
    except AutoMLError as exc:
        log.warning(kv("automl_priority_failed", reason=str(exc)))
        return None, f"the priority selection failed: {exc}"


def two_head_model(frame: pd.DataFrame, topic: Selection, priority: Selection | None, seed: int,
                   urgent_threshold: float | None = None, note: str = "") -> TwoHeadModel:
    """Both winners on one vectorizer (the topic winner's), each head with probabilities, fit once.

    With no priority head this is the topic winner's `served_pipeline` fit on the same rows, split in two.
    """
    served = served_pipeline(topic.winner, topic.strength, seed)
    head = None if priority is None else served_pipeline(priority.winner, priority.strength, seed).named_steps["clf"]
    model = TwoHeadModel(served.named_steps["features"], served.named_steps["clf"], head, urgent_threshold)
    priorities = None if priority is None else frame[PRIORITY].where(labelled(frame, PRIORITY)).str.strip()
    model.fit(frame[[TEXT]], frame[TOPIC], priority=priorities)
    if note:  # the selection's reason (too rare for the folds, ...) says more than "no head was asked for"
        model.priority_note_ = note
    return model


def _urgent_threshold(rows: pd.DataFrame, priority: Selection | None, folds: int, seed: int,
                      recall: float | None) -> float | None:
    """The urgent threshold reaching `recall` on out-of-fold probabilities of the training rows (None: argmax).

    The probabilities are the priority winner's own `served_pipeline` cross-validated on the priority rows, its
    vectorizer fit per fold on those rows. The served head reads the topic winner's vectorizer fit on every row,
    so the stated recall is approximate for it: the same feature kind (`same_features`), a different vocabulary.
    """
    if recall is None or priority is None:
        return None
    truth = rows[PRIORITY].astype(str)
    pipeline = fold_calibrated(served_pipeline(priority.winner, priority.strength, seed), truth, folds)
    proba = cross_val_predict(pipeline, rows[[TEXT]], truth, cv=StratifiedKFold(folds), method="predict_proba")
    try:
        threshold = urgent_threshold_for_recall(proba, truth.to_numpy(), sorted(truth.unique()), recall)
    except ValueError as exc:
        log.warning(kv("automl_urgent_threshold_skipped", reason=str(exc)))
        return None
    log.info(kv("automl_urgent_threshold", recall=recall, threshold=threshold))
    return threshold


def _priority_fields(priority: Selection | None, note: str, threshold: float | None) -> dict[str, object]:
    if priority is None:
        return {"priority_note": note}
    return {"priority_winner": priority.winner, "priority_leaderboard": priority.leaderboard,
            "priority_cv_macro_f1": priority.cv_macro_f1, "priority_strength": priority.strength,
            "priority_tuning": priority.tuning, "urgent_threshold": threshold}


def _log_done(topic: Selection, priority: Selection | None, note: str, threshold: float | None,
              select_seconds: float, fit_seconds: float) -> None:
    if priority is None:
        log.info(kv("automl_priority_skipped", reason=note))
    log.info(kv("automl_select_done", winner=topic.winner, strength=topic.strength, cv_macro_f1=topic.cv_macro_f1,
                heads="topic" if priority is None else "topic,priority",
                priority_winner=priority.winner if priority else "",
                priority_cv_macro_f1=priority.cv_macro_f1 if priority else "", urgent_threshold=threshold,
                select_s=select_seconds, fit_s=fit_seconds))


def _compare(exp: ClassificationExperiment, names: list[str], seed: int, cache: str, budget_s: float,
             parallel: WholeFugueBackend | None = None) -> pd.DataFrame:
    """PyCaret's leaderboard of the candidates, best first, with our candidate names.

    On a cluster (`parallel`) each worker sets the experiment up again and compares its own share of
    the candidates: the cache directory is this machine's, so the workers get none.
    """
    models = [TextModel(name, seed=seed, memory=cache if parallel is None else None) for name in names]
    # n_select=0: rank only; the winner is refit once, after tuning, as a plain pipeline. The Fugue
    # backend refits every candidate on its worker whatever n_select says; asking for all of them back
    # is what tells its rows apart (see _ranked).
    fitted = exp.compare_models(include=models, sort=MACRO_F1, n_select=0 if parallel is None else len(models),
                                budget_time=budget_s / 60.0, errors="ignore", verbose=False, parallel=parallel)
    leaderboard = exp.pull()
    if leaderboard is None or leaderboard.empty:
        raise AutoMLError("no candidate finished within the time budget; raise TICKET_AB_AUTOML_BUDGET_S")
    if parallel is None:
        leaderboard = leaderboard.copy()
        leaderboard.insert(0, "candidate", [names[int(i)] for i in leaderboard.index])
        leaderboard = leaderboard.reset_index(drop=True)
    else:
        leaderboard = _ranked(leaderboard, fitted if isinstance(fitted, list) else [fitted], names)
    if leaderboard.loc[0, MACRO_F1] <= 0:
        raise AutoMLError(f"every candidate failed to fit: {', '.join(leaderboard['candidate'])}")
    return leaderboard


def _ranked(leaderboard: pd.DataFrame, fitted: list[TextModel], names: list[str]) -> pd.DataFrame:
    """The Fugue backend's leaderboard in the local one's shape, so both engines hand on the same frame.

    Each worker numbers its own candidates from 0 (every row's index is "0"), and every row's Model is
    "TextModel": a row is only known by the fitted model returned in its place. Rows arrive in a random
    task order and are sorted unstably; the local loop's sort keeps the order of `names` among equal
    scores (numpy sorts so few rows by insertion), and so does this one.
    """
    if len(fitted) != len(leaderboard):
        raise AutoMLError(f"the dask engine returned {len(fitted)} models for {len(leaderboard)} leaderboard rows")
    board = leaderboard.reset_index(drop=True)
    board.insert(0, "candidate", [model.candidate for model in fitted])
    ranked = board.assign(_position=board["candidate"].map(names.index)).sort_values(
        [MACRO_F1, "_position"], ascending=[False, True], kind="mergesort")
    return ranked.drop(columns="_position").reset_index(drop=True)


def _tune(exp: ClassificationExperiment, winner: str, seed: int, cache: str, cv_f1: float,
          leaderboard: pd.DataFrame, remaining_s: float) -> tuple[float, dict[float, float], float]:
    """Grid-search the winner's strength with `tune_model` when the budget allows; keep it only if it wins.

    Returns (strength, strength -> cv macro-F1, the winner's cv macro-F1 after tuning). The cost is
    estimated from the winner's cross-validation time (features are cached, so it is an upper bound).
    """
    spec = CANDIDATES[winner]
    fold_seconds = float(leaderboard.loc[0, "TT (Sec)"]) if "TT (Sec)" in leaderboard else 0.0
    if len(spec.grid) < 2 or remaining_s <= 0 or fold_seconds * len(spec.grid) > remaining_s:
        log.info(kv("automl_tune_skipped", winner=winner, grid=len(spec.grid), remaining_s=remaining_s))
        return spec.strength, {}, cv_f1
    _, tuner = exp.tune_model(TextModel(winner, seed=seed, memory=cache), custom_grid={"strength": list(spec.grid)},
                              optimize=MACRO_F1, search_algorithm="grid", choose_better=False, return_tuner=True,
                              verbose=False, tuner_verbose=False)
    results = tuner.cv_results_
    tuning = {float(p["actual_estimator__strength"]): float(s)
              for p, s in zip(results["params"], results["mean_test_score"], strict=True)}
    best = max(tuning, key=tuning.get)
    log.info(kv("automl_tuned", winner=winner, grid=tuning, best=best, untuned_cv=cv_f1))
    return (best, tuning, tuning[best]) if tuning[best] > cv_f1 else (spec.strength, tuning, cv_f1)
