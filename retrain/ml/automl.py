"""PyCaret picks the estimator and tunes its regularisation; scikit-learn serves it.

PyCaret's own text preprocessing densifies TF-IDF (7k float64 columns, 2 GB for 10k tickets) and
its finalized pipeline is too slow to serve, so PyCaret runs with `preprocess=False` on
`TextModel`s: one estimator per candidate that builds the lean `text -> features -> classifier`
pipeline in `fit`. PyCaret cross-validates them (`compare_models`, ranked by macro-F1 under a
time budget), then grid-searches the winner's regularisation strength (`tune_model`, kept only if
it beats the untuned score). The winner is refit as a plain scikit-learn Pipeline, so the
registered artifact needs neither PyCaret nor `TextModel`. (A Pipeline handed to `tune_model`
would be cut down to its last step, which cannot read text: hence the wrapper.)

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

import pandas as pd
from pycaret.classification import ClassificationExperiment
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

from retrain.ml.candidates import CANDIDATES, Candidate
from retrain.ml.cluster import WholeFugueBackend, open_engine
from retrain.ml.features import text_pipeline
from ticket_ab.log import get_logger, kv
from ticket_ab.schema import TEXT, TOPIC
from ticket_ab.settings import AutoMLEngine

log = get_logger("automl")
pycaret_log = log.getChild("pycaret")
pycaret_log.setLevel(logging.WARNING)  # setup() narrates every step at INFO

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
    strength: float | None = None  # the winner's regularisation strength (the tuned one when tuning won)
    tuning: dict[float, float] = field(default_factory=dict)  # strength -> cv macro-F1 of the grid search


class TextModel(ClassifierMixin, BaseEstimator):
    """One candidate as PyCaret sees it: its hyperparameters are its own, the pipeline is built in `fit`."""

    def __init__(self, candidate: str = "lr", strength: float | None = None, seed: int = 0,
                 memory: str | None = None) -> None:
        self.candidate = candidate
        self.strength = strength
        self.seed = seed
        self.memory = memory

    def fit(self, X: pd.DataFrame, y, **_: object) -> TextModel:  # noqa: N803 (scikit-learn's names)
        self.pipeline_ = served_pipeline(self.candidate, self.strength, self.seed, self.memory, calibrate=False)
        self.pipeline_.fit(X, y)
        self.classes_ = self.pipeline_.classes_
        return self

    def predict(self, X: pd.DataFrame):  # noqa: N803
        return self.pipeline_.predict(X)


def served_pipeline(name: str, strength: float | None = None, seed: int = 0, memory: str | None = None,
                    calibrate: bool = True) -> Pipeline:
    """The plain scikit-learn pipeline of a candidate (with probabilities unless `calibrate=False`)."""
    spec: Candidate = CANDIDATES[name]
    pipeline = text_pipeline(spec.build(spec.strength if strength is None else strength, seed), spec.features, memory)
    return with_probabilities(pipeline) if calibrate else pipeline


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
    return Pipeline([("features", pipeline.named_steps["features"]), ("clf", calibrated)], memory=pipeline.memory)


def _experiment(data: pd.DataFrame, folds: int, seed: int) -> ClassificationExperiment:
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
    return exp


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
) -> AutoMLResult:
    """Cross-validate the candidates with PyCaret, tune the winner's strength, refit it with sklearn.

    Tuning needs `tune_min_rows` tickets: on fewer, cross-validated macro-F1 moves by more than the
    strengths of the grid differ, so the search would pick noise (and cost a dozen fits).
    `engine="dask"` cross-validates the candidates on the dask.distributed cluster at `scheduler`
    (see retrain.ml.cluster); tuning and the final fit stay here, the leaderboard is the same.
    """
    names = list(candidates or CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise AutoMLError(f"unknown candidate models {unknown}; known: {sorted(CANDIDATES)}")
    data = df[[TEXT, TOPIC]].reset_index(drop=True)
    check_trainable(data, folds)
    started = time.perf_counter()
    log.info(kv("automl_select_start", rows=len(data), candidates=",".join(names), folds=folds, budget_s=budget_s,
                engine=engine))
    with tempfile.TemporaryDirectory(prefix="automl-features-") as cache:
        with open_engine(engine, scheduler) as parallel:  # before setup: an unreachable cluster fails fast
            exp = _experiment(data, folds, seed)
            leaderboard = _compare(exp, names, seed, cache, budget_s, parallel)
        winner, cv_f1 = str(leaderboard.loc[0, "candidate"]), float(leaderboard.loc[0, MACRO_F1])
        remaining_s = budget_s - (time.perf_counter() - started) if len(data) >= tune_min_rows else 0.0
        strength, tuning, cv_f1 = _tune(exp, winner, seed, cache, cv_f1, leaderboard, remaining_s)
        select_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pipeline = served_pipeline(winner, strength, seed, memory=cache)
        pipeline.fit(data[[TEXT]], data[TOPIC].astype(str))
        pipeline.set_params(memory=None)  # the served artifact keeps no reference to the cache
    fit_seconds = time.perf_counter() - started
    log.info(kv("automl_select_done", winner=winner, strength=strength, cv_macro_f1=cv_f1, select_s=select_seconds,
                fit_s=fit_seconds))
    return AutoMLResult(pipeline, winner, leaderboard, cv_f1, select_seconds, fit_seconds, strength, tuning)


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
