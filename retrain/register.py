"""Train, gate, register: the one path by which a model version enters the registry.

The CLI (`bootstrap`, `train`) and the DAG's `train_challenger` task both call `train_and_register`,
so a version made by hand and one made by the pipeline carry the same tags, artifacts and checks.
This is the I/O shell around the pure steps of `retrain.ml.train`: it loads the champion to beat,
logs the run and registers the version through the registry adapter (the gate's verdict is a tag
of the registration itself), and moves the alias. Aliases move last: a failure anywhere before
leaves the registry's aliases as they were, and a retry with the same key completes the move.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.ml.gate import GateResult
from retrain.ml.train import (
    Candidate,
    Champion,
    Held,
    Progress,
    judge,
    masked,
    run_metrics,
    run_params,
    select_and_fit,
    validate_training,
    version_tags,
    write_files,
)
from ticket_ab import registry
from ticket_ab.log import get_logger, kv
from ticket_ab.schema import TEXT
from ticket_ab.settings import Settings

log = get_logger("train")


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
    priority: dict[str, Any] | None = None  # holdout priority figures (None: no priority head)
    priority_note: str = ""  # why the version has no priority head

    def summary(self) -> str:
        where = f"alias {self.alias}" if self.alias else "no alias"
        gate = "passed" if self.passed else "FAILED"
        return (f"v{self.version} ({self.winner}) macro-F1 {self.metrics.get('macro_f1', float('nan')):.4f} "
                f"accuracy {self.metrics.get('accuracy', float('nan')):.4f}; {self._priority()}; "
                f"gate {gate}: {self.gate_reason}; {where}")

    def _priority(self) -> str:
        if self.priority is None:
            return f"no priority head ({self.priority_note or 'not recorded'})"
        return (f"priority macro-F1 {self.priority['macro_f1']:.4f}, urgent predicted low "
                f"{self.priority['urgent_as_low_count']}/{self.priority['urgent_n']}, cost {self.priority['cost']:.3f}")


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
    held: Held | None = None,
) -> TrainOutcome:
    """Select with PyCaret, gate against the champion, register, and move the alias iff the gate passed.

    `key` makes the call idempotent as one step: a version already tagged with it is not trained
    again, but its alias move is completed when its recorded gate verdict passed, so a retry after a
    failure between registering and aliasing ends where a first success would. `holdout` (untouched
    labelled tickets of the current traffic, optionally with `customer_id`) replaces the random
    holdout when given. `held` (the topics the window's quarantine held, and window tickets the
    candidate is not trained on) adds the gate's label-free checks of those topics.
    """
    started = time.perf_counter()
    data = masked(validate_training(df, source=source or "training data"))
    client = registry.connect(settings.tracking_uri)
    existing = registry.find_version(client, settings.model_name, "run_key", key) if key else None
    if existing is not None:
        return resume(client, settings, alias, existing, progress)
    train, holdout, selection = select_and_fit(data, holdout, holdout_frac, settings, progress)
    candidate = judge(selection, train, holdout, current_champion(client, settings, alias), settings, progress, held)
    tags = version_tags(candidate, data, source, key, extra_tags)
    version, run_id = log_and_register(candidate, settings, tags, data[[TEXT]].head(3), alias)
    moves = alias_if_passed(client, settings, alias, version, candidate.gate, source)
    log.info(kv("train_done", model=settings.model_name, version=version, winner=selection.winner,
                heads=selection.heads, priority_winner=selection.priority_winner or "", passed=candidate.gate.passed,
                macro_f1=candidate.metrics["macro_f1"], seconds=time.perf_counter() - started))
    return TrainOutcome(version=version, run_id=run_id, winner=selection.winner, passed=candidate.gate.passed,
                        gate_reason=candidate.gate.reason, alias=alias if candidate.gate.passed else None,
                        metrics=candidate.metrics, champion_metrics=candidate.champion_metrics, moves=moves,
                        gate=candidate.gate.details, priority=candidate.priority,
                        priority_note=selection.priority_note)


def resume(client: registry.Client, settings: Settings, alias: str, version: registry.ModelVersion,
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
                        champion_metrics=None, reused=True, moves=[str(m) for m in moves],
                        priority_note=tags.get("priority_note", ""))


def current_champion(client: registry.Client, settings: Settings, alias: str) -> Champion | None:
    """The champion to beat with its trusted set (None: no champion, or the candidate becomes it outright)."""
    version = registry.version_for(client, settings.model_name, registry.CHAMPION)
    if version is None or alias == registry.CHAMPION:
        return None
    trusted, where = registry.load_trusted(version)
    pipeline = registry.load_version(settings.model_name, version.version)
    return Champion(version.version, pipeline, masked(trusted), where)


def log_and_register(candidate: Candidate, settings: Settings, tags: dict[str, str], example: pd.DataFrame,
                     alias: str) -> tuple[str, str]:
    """One MLflow run with params, metrics, leaderboard and drift reference; returns (version, run id)."""
    with tempfile.TemporaryDirectory() as tmp:
        written = write_files(candidate, settings, Path(tmp))
        files = [registry.Artifact(path, folder) for folder, path in written.items()]
        run_id, version = registry.log_run(
            settings, f"train-{candidate.selection.winner}", tags=tags, params=run_params(candidate, settings, alias),
            metrics=run_metrics(candidate), artifacts=files,
            model=registry.NewVersion(candidate.selection.pipeline, example, tags))
    return str(version), run_id


def alias_if_passed(client: registry.Client, settings: Settings, alias: str, version: str, verdict: GateResult,
                    source: str) -> list[str]:
    """Point `alias` at the new version when it passed the gate (the last step, on purpose)."""
    if not verdict.passed:
        return []
    why = f"trained on {source or 'data'}; {verdict.reason}"
    return [str(m) for m in registry.ensure_alias(client, settings.model_name, alias, version, why=why)]
