"""Train and judge a candidate: the pure steps of making a version, without any registry I/O.

Fit (PyCaret selects), judge (against the champion on the same untouched holdout and on the
champion's trusted set), and describe (the tags, metrics and files a version records). These
steps take data and models and return models and numbers; `retrain.register` does the I/O around
them (loads the champion, logs the run, registers, moves the alias).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from retrain.ml.automl import AutoMLResult, select_model
from retrain.ml.evaluate import predict, score, split_holdout
from retrain.ml.gate import Evidence, GateResult, quality_gate
from retrain.ml.patterns import champion_view
from ticket_ab.pii import mask
from ticket_ab.schema import TEXT, TOPIC, validate_tickets
from ticket_ab.settings import Settings

Progress = Callable[[str], None]


def masked(df: pd.DataFrame) -> pd.DataFrame:
    """Models learn from PII-masked text, as the router scores and logs it."""
    return df.assign(**{TEXT: df[TEXT].map(mask)})


def fingerprint(df: pd.DataFrame) -> str:
    """Order-independent hash of (text, topic): the same data always has the same fingerprint."""
    rows = pd.util.hash_pandas_object(df[[TEXT, TOPIC]].astype(str), index=False).sort_values()
    return hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16]


def reference_sample(train: pd.DataFrame, model: Pipeline, rows: int, seed: int) -> pd.DataFrame:
    """A bounded sample of what the model learned from, with its own predictions: drift's baseline."""
    sample = train.sample(n=min(rows, len(train)), random_state=seed)[[TEXT, TOPIC]].reset_index(drop=True)
    sample["predicted"] = model.predict(sample[[TEXT]])
    return sample


CUSTOMER = "customer_id"


@dataclass(frozen=True)
class Candidate:
    """A fitted model with its holdout scores next to the champion's: everything a version records."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    selection: AutoMLResult
    metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    gate: GateResult
    trusted: pd.DataFrame  # logged with the version: the next challenger's per-topic gate


@dataclass(frozen=True)
class Champion:
    version: str
    pipeline: Pipeline
    trusted: pd.DataFrame
    trusted_source: str


def select_and_fit(data: pd.DataFrame, holdout: pd.DataFrame | None, holdout_frac: float, settings: Settings,
        progress: Progress) -> tuple[pd.DataFrame, pd.DataFrame, AutoMLResult]:
    """(train, holdout, PyCaret's refitted winner): the holdout is split off unless one is given."""
    if holdout is None:
        train, holdout = split_holdout(data, holdout_frac, settings.seed)
    else:
        train, holdout = data, masked(validate_tickets(holdout, source="holdout", require_topic=True))
    progress(f"training on {len(train)} tickets ({train[TOPIC].nunique()} topics), holdout {len(holdout)}")
    training = settings.training
    selection = select_model(train, candidates=training.candidate_models, folds=training.automl_folds,
                             budget_s=training.automl_budget_s, tune_min_rows=training.automl_tune_min_rows,
                             seed=settings.seed, engine=training.automl_engine,
                             scheduler=training.automl_dask_scheduler)
    progress(f"PyCaret picked '{selection.winner}' (cv macro-F1 {selection.cv_macro_f1:.4f}) "
             f"in {selection.select_seconds:.1f} s")
    return train, holdout, selection


def clusters(holdout: pd.DataFrame) -> np.ndarray:
    """The customer of each held-out ticket; a ticket without one is its own customer."""
    own = pd.Series([f"ticket-{i}" for i in range(len(holdout))], index=holdout.index)
    if CUSTOMER not in holdout:
        return own.to_numpy()
    customers = holdout[CUSTOMER].astype("string").fillna("").str.strip()
    return customers.where(customers.ne(""), own).astype(str).to_numpy()


@dataclass(frozen=True)
class Held:
    """The topics whose window labels the quarantine held, and the window's tickets to judge them on
    (those the candidate was not trained on), for the gate's label-free checks."""

    topics: tuple[str, ...]
    window: pd.DataFrame  # `text`


def judge(selection: AutoMLResult, train: pd.DataFrame, holdout: pd.DataFrame, champion: Champion | None,
          settings: Settings, progress: Progress, held: Held | None = None) -> Candidate:
    """Both models on the untouched holdout, on the champion's trusted set and, for held topics, on the
    window's tickets; and the gate's verdict."""
    model = selection.pipeline
    metrics = score(model, holdout)
    evidence = Evidence(gold_true=holdout[TOPIC].astype(str).to_numpy(), gold_candidate=predict(model, holdout),
                        gold_champion=None, customers=clusters(holdout))
    champion_metrics, trusted = None, holdout[[TEXT, TOPIC]]
    if champion is not None:
        champion_metrics = {**score(champion.pipeline, holdout), "version": champion.version}
        trusted = champion.trusted
        evidence = replace(evidence, gold_champion=predict(champion.pipeline, holdout),
                           trusted_true=trusted[TOPIC].astype(str).to_numpy(),
                           trusted_candidate=predict(model, trusted),
                           trusted_champion=predict(champion.pipeline, trusted),
                           trusted_source=champion.trusted_source)
    if champion is not None and held is not None and held.topics:
        answers, confidence = champion_view(champion.pipeline, held.window[TEXT])
        evidence = replace(evidence, held_topics=held.topics, window_champion=answers, window_confidence=confidence,
                           window_candidate=predict(model, held.window))
    gate = quality_gate(evidence, settings)
    progress(f"quality gate {'passed' if gate.passed else 'failed'}: {gate.reason}")
    return Candidate(train, holdout, selection, metrics, champion_metrics, gate, trusted.reset_index(drop=True))


def version_tags(candidate: Candidate, data: pd.DataFrame, source: str, key: str | None,
                 extra_tags: dict[str, str] | None) -> dict[str, str]:
    """What a version says about itself: data, winner, holdout scores, gate verdict, run key."""
    return {
        "data_fingerprint": fingerprint(data),
        "train_rows": str(len(candidate.train)),
        "holdout_rows": str(len(candidate.holdout)),
        "source": source or "unknown",
        "automl_winner": candidate.selection.winner,
        "validation_status": "passed" if candidate.gate.passed else "failed",
        "gate_reason": candidate.gate.reason,
        "holdout_accuracy": f"{candidate.metrics['accuracy']:.4f}",
        "holdout_macro_f1": f"{candidate.metrics['macro_f1']:.4f}",
        "trusted_rows": str(len(candidate.trusted)),
        **({"run_key": key} if key else {}),
        **(extra_tags or {}),
    }


def run_metrics(candidate: Candidate) -> dict[str, float]:
    metrics, champion, selection = candidate.metrics, candidate.champion_metrics, candidate.selection
    return {
        "holdout_accuracy": metrics["accuracy"], "holdout_macro_f1": metrics["macro_f1"],
        "cv_macro_f1": selection.cv_macro_f1, "select_seconds": selection.select_seconds,
        "fit_seconds": selection.fit_seconds,
        **({"champion_holdout_macro_f1": champion["macro_f1"],
            "champion_holdout_accuracy": champion["accuracy"]} if champion else {}),
    }


def run_params(candidate: Candidate, settings: Settings, alias: str) -> dict[str, Any]:
    """How the candidate was selected: what a version's run records as parameters."""
    training = settings.training
    return {"winner": candidate.selection.winner, "candidates": ",".join(training.candidate_models),
            "folds": training.automl_folds, "budget_s": training.automl_budget_s,
            "train_rows": len(candidate.train), "holdout_rows": len(candidate.holdout), "target_alias": alias}


def write_files(candidate: Candidate, settings: Settings, directory: Path) -> dict[str, Path]:
    """A version's files, by the run folder they belong in: the leaderboard and holdout scores
    (`automl`), the drift baseline (`reference`) and the next challenger's per-topic gate (`trusted`)."""
    scores = directory / "automl"
    scores.mkdir(parents=True, exist_ok=True)
    leaderboard = candidate.selection.leaderboard
    leaderboard.to_csv(scores / "leaderboard.csv", index=False)
    (scores / "leaderboard.md").write_text(leaderboard.to_markdown(index=False))
    (scores / "holdout_metrics.json").write_text(json.dumps(
        {"candidate": candidate.metrics, "champion": candidate.champion_metrics, "gate": asdict(candidate.gate)},
        indent=2, default=str))
    reference = reference_sample(candidate.train, candidate.selection.pipeline, settings.training.reference_rows,
                                 settings.seed)
    reference.to_parquet(directory / "reference.parquet", index=False)
    candidate.trusted[[TEXT, TOPIC]].to_parquet(directory / "trusted.parquet", index=False)
    return {"automl": scores, "reference": directory / "reference.parquet", "trusted": directory / "trusted.parquet"}
