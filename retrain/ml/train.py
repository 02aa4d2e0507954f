"""Train, gate, register: the one path by which a model version enters the registry.

The CLI (`bootstrap`, `train`) and the DAG's `train_challenger` task both call `train_and_register`,
so a version made by hand and one made by the pipeline carry the same tags, artifacts and checks.
It is a composition of steps of one job each: fit (PyCaret selects), judge (against the champion
on the same untouched holdout and on the champion's trusted set), log and register (the gate's
verdict is a tag of the registration itself), move the alias. Aliases move last: a failure anywhere
before leaves the registry's aliases as they were, and a retry with the same key completes the move.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from sklearn.pipeline import Pipeline

from retrain.ml.automl import AutoMLResult, select_model
from retrain.ml.evaluate import predict, score, split_holdout
from retrain.ml.gate import Evidence, GateResult, quality_gate
from ticket_ab import registry
from ticket_ab.log import get_logger, kv
from ticket_ab.pii import mask
from ticket_ab.schema import TEXT, TOPIC, validate_tickets
from ticket_ab.settings import Settings

log = get_logger("train")
Progress = Callable[[str], None]


@dataclass
class TrainOutcome:
    version: str
    run_id: str
    winner: str
    passed: bool
    gate_reason: str
    alias: str | None  # the alias that now points at this version, if any
    metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    reused: bool = False  # True when the same key was already registered
    moves: list[str] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)  # the gate's evidence: gain interval, topic recalls

    def summary(self) -> str:
        where = f"alias {self.alias}" if self.alias else "no alias"
        gate = "passed" if self.passed else "FAILED"
        return (f"v{self.version} ({self.winner}) macro-F1 {self.metrics.get('macro_f1', float('nan')):.4f} "
                f"accuracy {self.metrics.get('accuracy', float('nan')):.4f}; gate {gate}: {self.gate_reason}; {where}")


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


def train_and_register(
    df: pd.DataFrame,
    settings: Settings,
    *,
    alias: str = registry.CHALLENGER,
    source: str = "",
    key: str | None = None,
    holdout: pd.DataFrame | None = None,
    holdout_frac: float = 0.2,
    extra_tags: dict[str, str] | None = None,
    progress: Progress = print,
) -> TrainOutcome:
    """Select with PyCaret, gate against the champion, register, and move the alias iff the gate passed.

    `key` makes the call idempotent as one step: a version already tagged with it is not trained
    again, but its alias move is completed when its recorded gate verdict passed, so a retry after a
    failure between registering and aliasing ends where a first success would. `holdout` (untouched
    labelled tickets of the current traffic, optionally with `customer_id`) replaces the random
    holdout when given.
    """
    started = time.perf_counter()
    data = masked(validate_tickets(df, source=source or "training data", require_topic=True))
    client = registry.connect(settings.tracking_uri)
    existing = registry.find_version(client, settings.model_name, "run_key", key) if key else None
    if existing is not None:
        return resume(client, settings, alias, existing, progress)
    train, holdout, selection = select_and_fit(data, holdout, holdout_frac, settings, progress)
    champion = current_champion(client, settings, alias)
    candidate = judge(selection, train, holdout, champion, settings, progress)
    tags = version_tags(candidate, data, source, key, extra_tags)
    version, run_id = log_and_register(candidate, settings, tags, data[[TEXT]].head(3), alias)
    moves = alias_if_passed(client, settings, alias, version, candidate.gate, source)
    log.info(kv("train_done", model=settings.model_name, version=version, winner=selection.winner,
                passed=candidate.gate.passed, macro_f1=candidate.metrics["macro_f1"],
                seconds=time.perf_counter() - started))
    return TrainOutcome(version=version, run_id=run_id, winner=selection.winner, passed=candidate.gate.passed,
                        gate_reason=candidate.gate.reason, alias=alias if candidate.gate.passed else None,
                        metrics=candidate.metrics, champion_metrics=candidate.champion_metrics, moves=moves,
                        gate=candidate.gate.details)


def resume(client: MlflowClient, settings: Settings, alias: str, version: ModelVersion,
           progress: Progress) -> TrainOutcome:
    """Finish an earlier call with the same key: its tags hold the gate verdict, so only the alias may be missing."""
    tags = dict(version.tags)
    passed = tags.get("validation_status") == "passed"
    why = f"completing run key {tags.get('run_key')}: {tags.get('gate_reason', '')}"
    moves = registry.ensure_alias(client, settings.model_name, alias, version.version, why=why) if passed else []
    progress(f"version v{version.version} already registered for key {tags.get('run_key')}: "
             + (f"alias {alias} moved now" if moves else "nothing left to do"))
    return TrainOutcome(version=version.version, run_id=version.run_id, winner=tags.get("automl_winner", "?"),
                        passed=passed, gate_reason=tags.get("gate_reason", ""), alias=alias if passed else None,
                        metrics={"accuracy": float(tags.get("holdout_accuracy", "nan")),
                                 "macro_f1": float(tags.get("holdout_macro_f1", "nan"))},
                        champion_metrics=None, reused=True, moves=[str(m) for m in moves])


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
                             seed=settings.seed)
    progress(f"PyCaret picked '{selection.winner}' (cv macro-F1 {selection.cv_macro_f1:.4f}) "
             f"in {selection.select_seconds:.1f} s")
    return train, holdout, selection


def current_champion(client: MlflowClient, settings: Settings, alias: str) -> Champion | None:
    """The champion to beat with its trusted set (None: no champion, or the candidate becomes it outright)."""
    version = registry.version_for(client, settings.model_name, registry.CHAMPION)
    if version is None or alias == registry.CHAMPION:
        return None
    trusted, where = registry.load_trusted(version)
    pipeline = registry.load_pipeline(settings.model_name, registry.CHAMPION)
    return Champion(version.version, pipeline, masked(trusted), where)


def clusters(holdout: pd.DataFrame) -> np.ndarray:
    """The customer of each held-out ticket; a ticket without one is its own customer."""
    own = pd.Series([f"ticket-{i}" for i in range(len(holdout))], index=holdout.index)
    if CUSTOMER not in holdout:
        return own.to_numpy()
    customers = holdout[CUSTOMER].astype("string").fillna("").str.strip()
    return customers.where(customers.ne(""), own).astype(str).to_numpy()


def judge(selection: AutoMLResult, train: pd.DataFrame, holdout: pd.DataFrame, champion: Champion | None,
          settings: Settings, progress: Progress) -> Candidate:
    """Both models on the untouched holdout and on the champion's trusted set, and the gate's verdict."""
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


def log_and_register(candidate: Candidate, settings: Settings, tags: dict[str, str], example: pd.DataFrame,
                     alias: str) -> tuple[str, str]:
    """One MLflow run with params, metrics, leaderboard and drift reference; returns (version, run id)."""
    registry.use_settings_experiment(settings)
    selection, training = candidate.selection, settings.training
    with mlflow.start_run(run_name=f"train-{selection.winner}") as run:
        mlflow.set_tags(tags)
        mlflow.log_params({"winner": selection.winner, "candidates": ",".join(training.candidate_models),
                           "folds": training.automl_folds, "budget_s": training.automl_budget_s,
                           "train_rows": len(candidate.train), "holdout_rows": len(candidate.holdout),
                           "target_alias": alias})
        mlflow.log_metrics(_run_metrics(candidate))
        with tempfile.TemporaryDirectory() as tmp:
            _log_artifacts(candidate, settings, Path(tmp))
        version = registry.register_pipeline(selection.pipeline, settings.model_name, example, tags)
    return version, run.info.run_id


def _run_metrics(candidate: Candidate) -> dict[str, float]:
    metrics, champion, selection = candidate.metrics, candidate.champion_metrics, candidate.selection
    return {
        "holdout_accuracy": metrics["accuracy"], "holdout_macro_f1": metrics["macro_f1"],
        "cv_macro_f1": selection.cv_macro_f1, "select_seconds": selection.select_seconds,
        "fit_seconds": selection.fit_seconds,
        **({"champion_holdout_macro_f1": champion["macro_f1"],
            "champion_holdout_accuracy": champion["accuracy"]} if champion else {}),
    }


def _log_artifacts(candidate: Candidate, settings: Settings, tmp: Path) -> None:
    """The leaderboard and holdout scores (`automl/`) and the drift baseline (`reference/`)."""
    leaderboard = candidate.selection.leaderboard
    leaderboard.to_csv(tmp / "leaderboard.csv", index=False)
    (tmp / "leaderboard.md").write_text(leaderboard.to_markdown(index=False))
    (tmp / "holdout_metrics.json").write_text(json.dumps(
        {"candidate": candidate.metrics, "champion": candidate.champion_metrics, "gate": asdict(candidate.gate)},
        indent=2, default=str))
    mlflow.log_artifacts(str(tmp), artifact_path="automl")
    reference = reference_sample(candidate.train, candidate.selection.pipeline, settings.training.reference_rows,
                                 settings.seed)
    reference.to_parquet(tmp / "reference.parquet", index=False)
    mlflow.log_artifact(str(tmp / "reference.parquet"), artifact_path="reference")
    candidate.trusted[[TEXT, TOPIC]].to_parquet(tmp / "trusted.parquet", index=False)
    mlflow.log_artifact(str(tmp / "trusted.parquet"), artifact_path="trusted")


def alias_if_passed(client: MlflowClient, settings: Settings, alias: str, version: str, verdict: GateResult,
               source: str) -> list[str]:
    """Point `alias` at the new version when it passed the gate (the last step, on purpose)."""
    if not verdict.passed:
        return []
    why = f"trained on {source or 'data'}; {verdict.reason}"
    return [str(m) for m in registry.ensure_alias(client, settings.model_name, alias, version, why=why)]
