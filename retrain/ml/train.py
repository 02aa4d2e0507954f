"""Train, gate, register: the one path by which a model version enters the registry.

The CLI (`bootstrap`, `train`) and the DAG's `train_challenger` task both call `train_and_register`,
so a version made by hand and one made by the pipeline carry the same tags, artifacts and checks.
Aliases move last: a failure anywhere before leaves the registry's aliases as they were.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from retrain.adapters import registry
from retrain.contracts.log import get_logger, kv
from retrain.contracts.pii import mask
from retrain.contracts.schema import TEXT, TOPIC, validate_tickets
from retrain.contracts.settings import Settings
from retrain.ml.automl import select_model
from retrain.ml.evaluate import score
from retrain.ml.gate import quality_gate

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


def split_holdout(df: pd.DataFrame, frac: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified when every topic can be split, plain random otherwise (rare topics in tiny data)."""
    counts = df[TOPIC].value_counts()
    stratify = df[TOPIC] if counts.min() >= 2 and len(df) * frac >= len(counts) else None
    train, holdout = train_test_split(df, test_size=frac, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def reference_sample(train: pd.DataFrame, model, rows: int, seed: int) -> pd.DataFrame:
    """A bounded sample of what the model learned from, with its own predictions: drift's baseline."""
    sample = train.sample(n=min(rows, len(train)), random_state=seed)[[TEXT, TOPIC]].reset_index(drop=True)
    sample["predicted"] = model.predict(sample[[TEXT]])
    return sample


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
    """Select with PyCaret, score on a holdout against the champion, register, and maybe alias.

    `key` makes the call idempotent: a version already tagged with it is returned as is.
    `holdout` (labelled tickets of the current traffic) replaces the random holdout when given.
    """
    import mlflow

    started = time.perf_counter()
    data = masked(validate_tickets(df, source=source or "training data", require_topic=True))
    client = registry.connect(settings.tracking_uri)
    if key is not None:
        existing = registry.find_version(client, settings.model_name, "run_key", key)
        if existing is not None:
            progress(f"version v{existing.version} already registered for key {key}: nothing to do")
            return _outcome_from_version(client, settings, existing)

    if holdout is None:
        train, holdout = split_holdout(data, holdout_frac, settings.seed)
    else:
        train, holdout = data, masked(validate_tickets(holdout, source="holdout", require_topic=True))
    progress(f"training on {len(train)} tickets ({train[TOPIC].nunique()} topics), holdout {len(holdout)}")

    result = select_model(train, candidates=settings.training.candidate_models, folds=settings.training.automl_folds,
                          budget_s=settings.training.automl_budget_s, seed=settings.seed)
    progress(f"PyCaret picked '{result.winner}' (cv macro-F1 {result.cv_macro_f1:.4f}) "
             f"in {result.select_seconds:.1f} s")
    metrics = score(result.pipeline, holdout)

    champion_metrics = None
    champion = registry.version_for(client, settings.model_name, registry.CHAMPION)
    if champion is not None and alias != registry.CHAMPION:
        champion_model = registry.load_pipeline(settings.model_name, registry.CHAMPION)
        champion_metrics = score(champion_model, holdout)
        champion_metrics["version"] = champion.version
    gate = quality_gate(metrics["macro_f1"], champion_metrics["macro_f1"] if champion_metrics else None,
                        settings.training.gate_margin)
    progress(f"quality gate {'passed' if gate.passed else 'failed'}: {gate.reason}")

    mlflow.set_experiment(settings.experiment)
    tags = {
        "data_fingerprint": fingerprint(data),
        "train_rows": str(len(train)),
        "holdout_rows": str(len(holdout)),
        "source": source or "unknown",
        "automl_winner": result.winner,
        "validation_status": "passed" if gate.passed else "failed",
        "gate_reason": gate.reason,
        "holdout_accuracy": f"{metrics['accuracy']:.4f}",
        "holdout_macro_f1": f"{metrics['macro_f1']:.4f}",
        **({"run_key": key} if key else {}),
        **(extra_tags or {}),
    }
    with mlflow.start_run(run_name=f"train-{result.winner}") as run:
        mlflow.set_tags(tags)
        mlflow.log_params({"winner": result.winner, "candidates": ",".join(settings.training.candidate_models),
                           "folds": settings.training.automl_folds, "budget_s": settings.training.automl_budget_s,
                           "train_rows": len(train), "holdout_rows": len(holdout), "target_alias": alias})
        mlflow.log_metrics({
            "holdout_accuracy": metrics["accuracy"], "holdout_macro_f1": metrics["macro_f1"],
            "cv_macro_f1": result.cv_macro_f1, "select_seconds": result.select_seconds,
            "fit_seconds": result.fit_seconds,
            **({"champion_holdout_macro_f1": champion_metrics["macro_f1"],
                "champion_holdout_accuracy": champion_metrics["accuracy"]} if champion_metrics else {}),
        })
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            result.leaderboard.to_csv(tmp_path / "leaderboard.csv", index=False)
            (tmp_path / "leaderboard.md").write_text(result.leaderboard.to_markdown(index=False))
            (tmp_path / "holdout_metrics.json").write_text(json.dumps(
                {"candidate": metrics, "champion": champion_metrics, "gate": asdict(gate)}, indent=2))
            mlflow.log_artifacts(str(tmp_path), artifact_path="automl")
            ref = reference_sample(train, result.pipeline, settings.training.reference_rows, settings.seed)
            (tmp_path / "reference.parquet").unlink(missing_ok=True)
            ref.to_parquet(tmp_path / "reference.parquet", index=False)
            mlflow.log_artifact(str(tmp_path / "reference.parquet"), artifact_path="reference")
        version = registry.register_pipeline(result.pipeline, settings.model_name, data[[TEXT]].head(3), tags)

    moves = []
    if gate.passed:
        why = f"trained on {source or 'data'}; {gate.reason}"
        moves.append(str(registry.move_alias(client, settings.model_name, alias, version, why=why)))
    outcome = TrainOutcome(version=version, run_id=run.info.run_id, winner=result.winner, passed=gate.passed,
                           gate_reason=gate.reason, alias=alias if gate.passed else None, metrics=metrics,
                           champion_metrics=champion_metrics, moves=moves)
    log.info(kv("train_done", model=settings.model_name, version=version, winner=result.winner,
                passed=gate.passed, macro_f1=metrics["macro_f1"], seconds=time.perf_counter() - started))
    return outcome


def _outcome_from_version(client, settings: Settings, version) -> TrainOutcome:
    tags = dict(version.tags)
    aliases = list(getattr(version, "aliases", []) or [])
    return TrainOutcome(version=version.version, run_id=version.run_id, winner=tags.get("automl_winner", "?"),
                        passed=tags.get("validation_status") != "failed", gate_reason=tags.get("gate_reason", ""),
                        alias=aliases[0] if aliases else None,
                        metrics={"accuracy": float(tags.get("holdout_accuracy", "nan")),
                                 "macro_f1": float(tags.get("holdout_macro_f1", "nan"))},
                        champion_metrics=None, reused=True)
