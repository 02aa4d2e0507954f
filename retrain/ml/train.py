"""Train and judge a candidate: the pure steps of making a version, without any registry I/O.

Fit (PyCaret selects), judge (against the champion on the same untouched holdout and on the
champion's trusted set), and describe (the tags, metrics and files a version records). These
steps take data and models and return models and numbers; `retrain.register` does the I/O around
them (loads the champion, logs the run, registers, moves the alias).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from retrain.ml.automl import AutoMLResult, select_model
from retrain.ml.evaluate import (
    labelled,
    predict,
    predict_priority,
    score,
    split_holdout,
    with_priority,
    with_topic,
)
from retrain.ml.gate import Evidence, GateResult, quality_gate
from retrain.ml.patterns import champion_view
from retrain.ml.priority import priority_scores
from ticket_ab.pii import mask
from ticket_ab.schema import PRIORITIES, PRIORITY, TEXT, TOPIC, TicketDataError, validate_tickets
from ticket_ab.settings import Settings
from ticket_ab.twohead import TwoHeadModel, answers, priority_note, probabilities

Progress = Callable[[str], None]
Model = Pipeline | TwoHeadModel  # a registered version: an older one-head Pipeline or a TwoHeadModel


def masked(df: pd.DataFrame) -> pd.DataFrame:
    """Models learn from PII-masked text, as the router scores and logs it."""
    return df.assign(**{TEXT: df[TEXT].map(mask)})


def validate_training(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Training tickets, checked: each has a topic, a priority or both; priorities are the schema's.

    Without a `priority` column this is the one-head rule (every ticket needs a topic). With one, a
    ticket may carry only a priority (priority-only feedback): the topic checks apply to the tickets
    with a topic, a priority is stripped (blank: unknown) and one outside PRIORITIES is refused.
    """
    if PRIORITY not in df.columns:
        return validate_tickets(df, source=source, require_topic=True)
    where = f"{source} ({len(df)} rows)"
    if TOPIC not in df.columns:
        raise TicketDataError(f"{where}: missing column '{TOPIC}', which training needs")
    out = validate_tickets(df, source=source)
    out[PRIORITY] = out[PRIORITY].astype(object).where(labelled(out, PRIORITY)).map(lambda v: str(v).strip(),
                                                                                   na_action="ignore")
    out[TOPIC] = out[TOPIC].where(labelled(out, TOPIC))
    unknown = sorted(set(out[PRIORITY].dropna()) - set(PRIORITIES))
    if unknown:
        raise TicketDataError(f"{where}: unknown priorities {unknown[:5]} (known: {list(PRIORITIES)})")
    empty = out[TOPIC].isna() & out[PRIORITY].isna()
    if empty.any():
        rows = ", ".join(str(i) for i in empty.to_numpy().nonzero()[0][:5])
        raise TicketDataError(f"{where}: {int(empty.sum())} tickets have neither '{TOPIC}' nor '{PRIORITY}' "
                              f"(rows {rows})")
    if out[TOPIC].isna().all():
        raise TicketDataError(f"{where}: no ticket has a '{TOPIC}', which training needs")
    return out


def fingerprint(df: pd.DataFrame) -> str:
    """Order-independent hash of (text, topic[, priority]): the same data always has the same fingerprint.

    Data without a priority hashes as it did before priorities were trained, whether the column is missing or
    present and empty (the DAG always reindexes to it), as `retrain.labelstore.fingerprint` does."""
    columns = [TEXT, TOPIC, *([PRIORITY] if labelled(df, PRIORITY).any() else [])]
    rows = pd.util.hash_pandas_object(df[columns].fillna("").astype(str), index=False).sort_values()
    return hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16]


def reference_sample(train: pd.DataFrame, model: Model, rows: int, seed: int) -> pd.DataFrame:
    """A bounded sample of what the model learned from, with its own predictions: drift's baseline.

    Keeps each ticket's `priority` when the data has one, and the model's `predicted_priority` when it
    answers one (the priority mix's baseline)."""
    columns = [TEXT, TOPIC, *([PRIORITY] if PRIORITY in train else [])]
    sample = train.sample(n=min(rows, len(train)), random_state=seed)[columns].reset_index(drop=True)
    topics, priorities = answers(model, *probabilities(model, sample[[TEXT]]))
    sample["predicted"] = topics
    if priorities is not None:
        sample["predicted_priority"] = priorities
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
    priority: dict[str, Any] | None = None  # holdout priority figures (None: no priority head)
    champion_priority: dict[str, Any] | None = None


@dataclass(frozen=True)
class Champion:
    version: str
    pipeline: Model
    trusted: pd.DataFrame
    trusted_source: str


def select_and_fit(data: pd.DataFrame, holdout: pd.DataFrame | None, holdout_frac: float, settings: Settings,
        progress: Progress) -> tuple[pd.DataFrame, pd.DataFrame, AutoMLResult]:
    """(train, holdout, PyCaret's refitted winner): the holdout is split off unless one is given."""
    if holdout is None:
        train, holdout = split_holdout(data, holdout_frac, settings.seed)
    else:
        train, holdout = data, masked(validate_training(holdout, source="holdout"))
    priorities = f", {len(with_priority(train))} with a priority" if PRIORITY in train else ""
    progress(f"training on {len(train)} tickets ({train[TOPIC].nunique()} topics{priorities}), "
             f"holdout {len(holdout)}")
    training = settings.training
    selection = select_model(train, candidates=training.candidate_models, folds=training.automl_folds,
                             budget_s=training.automl_budget_s, tune_min_rows=training.automl_tune_min_rows,
                             seed=settings.seed, engine=training.automl_engine,
                             scheduler=training.automl_dask_scheduler, urgent_recall=training.priority_urgent_recall)
    progress(f"PyCaret picked '{selection.winner}' for the topic (cv macro-F1 {selection.cv_macro_f1:.4f}) and "
             + (f"'{selection.priority_winner}' for the priority (cv macro-F1 {selection.priority_cv_macro_f1:.4f})"
                if selection.priority_winner else f"no priority head ({selection.priority_note})")
             + f" in {selection.select_seconds:.1f} s")
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
    window's tickets; and the gate's verdict. Topics are judged on the held-out tickets with a topic,
    priorities on those with a priority."""
    model, gold = selection.pipeline, with_topic(holdout)
    metrics = score(model, holdout)
    evidence = replace(_priority_evidence(model, champion, holdout, selection.priority_trainable),
                       gold_true=gold[TOPIC].astype(str).to_numpy(), gold_candidate=predict(model, gold),
                       customers=clusters(gold))
    champion_metrics, trusted = None, gold[[TEXT, TOPIC, *([PRIORITY] if PRIORITY in gold else [])]]
    if champion is not None:
        champion_metrics = {**score(champion.pipeline, holdout), "version": champion.version}
        trusted = champion.trusted
        evidence = replace(evidence, gold_champion=predict(champion.pipeline, gold),
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
    truth, candidate, champions = evidence.priority_true, evidence.priority_candidate, evidence.priority_champion
    mine = None if candidate is None else priority_scores(truth, candidate)  # the gate's predictions, not redone
    theirs = None if champions is None else priority_scores(truth, champions)
    return Candidate(train, holdout, selection, metrics, champion_metrics, gate, trusted.reset_index(drop=True),
                     None if mine is None else mine.as_dict(),
                     None if theirs is None else {**theirs.as_dict(), "version": champion.version})


def _priority_evidence(model: Model, champion: Champion | None, holdout: pd.DataFrame, trainable: bool) -> Evidence:
    """The gate's priority evidence on the held-out tickets with a priority, with their customers (topic fields
    left empty); `trainable`: the candidate's training data could train a priority head."""
    rows = with_priority(holdout)
    truth = rows[PRIORITY].astype(str).str.strip().to_numpy() if PRIORITY in holdout else np.array([], dtype=str)
    empty = np.array([], dtype=str)
    return Evidence(gold_true=empty, gold_candidate=empty, gold_champion=None, customers=empty,
                    priority_true=truth, priority_candidate=predict_priority(model, rows),
                    priority_champion=None if champion is None else predict_priority(champion.pipeline, rows),
                    candidate_priority_note=priority_note(model), candidate_priority_trainable=trainable,
                    priority_customers=clusters(rows))


def version_tags(candidate: Candidate, data: pd.DataFrame, source: str, key: str | None,
                 extra_tags: dict[str, str] | None) -> dict[str, str]:
    """What a version says about itself: data, winners, heads, holdout scores, gate verdict, run key."""
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
        **priority_tags(candidate),
        **({"run_key": key} if key else {}),
        **(extra_tags or {}),
    }


# holdout figure name (tag and metric `holdout_<name>`) -> key of PriorityScores
PRIORITY_FIGURES = {"priority_macro_f1": "macro_f1", "urgent_as_low": "urgent_as_low", "priority_cost": "cost",
                    "urgent_recall": "urgent_recall", "urgent_precision": "urgent_precision"}


def priority_tags(candidate: Candidate) -> dict[str, str]:
    """The heads a version answers and, with a priority head, its winner, urgent threshold and holdout figures
    (`priority_note` says why a version has none). The threshold is tagged in full (`repr`): the model and the
    ONNX graph compare P(urgent) with the float itself, and a rounded tag would disagree near it."""
    selection, figures = candidate.selection, candidate.priority
    tags = {"heads": selection.heads}
    if figures is None:
        return {**tags, "priority_note": priority_note(selection.pipeline)}
    threshold = selection.pipeline.urgent_threshold
    return {**tags, "priority_winner": selection.priority_winner or "",
            "priority_urgent_threshold": "argmax" if threshold is None else repr(float(threshold)),
            **{f"holdout_{name}": f"{figures[key]:.4f}" for name, key in PRIORITY_FIGURES.items()}}


def run_metrics(candidate: Candidate) -> dict[str, float]:
    """The run's numbers; a figure without tickets (NaN: no urgent ticket held out, ...) is left out."""
    metrics, champion, selection = candidate.metrics, candidate.champion_metrics, candidate.selection
    mine, theirs = candidate.priority or {}, candidate.champion_priority or {}
    numbers = {
        "holdout_accuracy": metrics["accuracy"], "holdout_macro_f1": metrics["macro_f1"],
        "cv_macro_f1": selection.cv_macro_f1, "select_seconds": selection.select_seconds,
        "fit_seconds": selection.fit_seconds,
        **({"champion_holdout_macro_f1": champion["macro_f1"],
            "champion_holdout_accuracy": champion["accuracy"]} if champion else {}),
        **({"priority_cv_macro_f1": selection.priority_cv_macro_f1} if selection.priority_winner else {}),
        **{f"holdout_{name}": mine[key] for name, key in PRIORITY_FIGURES.items() if key in mine},
        **{f"champion_holdout_{name}": theirs[key] for name, key in PRIORITY_FIGURES.items() if key in theirs},
    }
    return {name: value for name, value in numbers.items() if not math.isnan(value)}


def run_params(candidate: Candidate, settings: Settings, alias: str) -> dict[str, Any]:
    """How the candidate was selected: what a version's run records as parameters."""
    training = settings.training
    return {"winner": candidate.selection.winner, "priority_winner": candidate.selection.priority_winner or "",
            "urgent_recall": training.priority_urgent_recall or "", "candidates": ",".join(training.candidate_models),
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
    if candidate.selection.priority_leaderboard is not None:
        candidate.selection.priority_leaderboard.to_csv(scores / "priority_leaderboard.csv", index=False)
    (scores / "holdout_metrics.json").write_text(json.dumps(
        {"candidate": candidate.metrics, "champion": candidate.champion_metrics, "gate": asdict(candidate.gate),
         "priority": {"candidate": candidate.priority, "champion": candidate.champion_priority,
                      "note": candidate.selection.priority_note}},
        indent=2, default=str))
    reference = reference_sample(candidate.train, candidate.selection.pipeline, settings.training.reference_rows,
                                 settings.seed)
    reference.to_parquet(directory / "reference.parquet", index=False)
    trusted = candidate.trusted
    trusted[[TEXT, TOPIC, *([PRIORITY] if PRIORITY in trusted else [])]].to_parquet(directory / "trusted.parquet",
                                                                                    index=False)
    return {"automl": scores, "reference": directory / "reference.parquet", "trusted": directory / "trusted.parquet"}
