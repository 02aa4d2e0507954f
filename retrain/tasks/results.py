"""What each DAG task hands on: frozen dataclasses that travel through Airflow's XCom as they are.

A task body returns a typed result and the DAG file returns it to Airflow as it is: Airflow's serde
writes a dataclass as its fields plus its class name and builds it again for the next task, so the
task bodies read named fields, not string keys, and nothing is read back from files by name.
Airflow builds only classes it is told to trust: every Airflow process gets
`AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES` = `XCOM_CLASSES` (see ops and docker-compose.yml).
On a quiet day `relabel` and `train_challenger` are skipped, and `report` receives None for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ticket_ab.names import RELABEL_TASK, SKIP_TASK

# What Airflow may rebuild from XCom: its own classes and these results (space-separated globs).
XCOM_CLASSES = "airflow.* retrain.tasks.results.*"


class _Result:
    """A result's fields as plain data, for logs and reports."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Collected(_Result):
    """The window saved by `collect_window`, its counts and the watermark a successful run commits."""

    run_id: str
    run_dir: str
    window_path: str
    rows: int
    labelled: int
    stats: dict[str, Any]
    summary: str
    next_watermark: dict[str, Any]
    late_path: str | None = None  # late feedback for tickets of earlier windows, stored as pending in the label store

    @property
    def directory(self) -> Path:
        return Path(self.run_dir)


@dataclass(frozen=True)
class Checked(_Result):
    """The drift decision with its reasons and checks; the evidence's paths when it was measured."""

    run_id: str
    retrain: bool
    status: str  # drift | no_drift | too_small | no_reference
    reasons: list[str]
    fired: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    signals: dict[str, Any] | None = None
    champion: str | None = None
    reference_path: str | None = None  # the champion's reference, copied into the run's directory
    html: str | None = None
    json_path: str | None = None
    mlflow_run_id: str | None = None
    seconds: float | None = None

    def branch(self) -> str:
        """The branch task's answer: relabel and train on drift or an accuracy drop, else skip."""
        return RELABEL_TASK if self.retrain else SKIP_TASK


@dataclass(frozen=True)
class Relabelled(_Result):
    """Where `relabel` put the training labels, the gold holdout and the review queue."""

    train_path: str
    holdout_path: str
    review_path: str
    stats: dict[str, Any]
    patterns: list[str] = field(default_factory=list)  # suspicious label patterns, quarantined
    store: dict[str, int] = field(default_factory=dict)  # the label store's counts after this window
    held_topics: list[str] = field(default_factory=list)  # both topics of each pattern: the gate judges them label-free


@dataclass(frozen=True)
class Trained(_Result):
    """The challenger `train_challenger` registered, or why there is none (`version` None, `why`)."""

    key: str
    version: str | None = None
    why: str | None = None
    passed: bool | None = None
    alias: str | None = None
    gate_reason: str | None = None
    winner: str | None = None
    reused: bool = False
    metrics: dict[str, Any] | None = None
    champion_metrics: dict[str, Any] | None = None
    train_rows: int | None = None
    holdout_rows: int | None = None
    gate: dict[str, Any] | None = None  # the gate's evidence: clustered gain, per-topic recalls on the trusted set
    store_fingerprint: str | None = None  # of the label-store draw it trained on


@dataclass(frozen=True)
class Reported(_Result):
    """The run's summary line, its markdown report and whether the watermark moved."""

    line: str
    markdown: str
    mlflow_run_id: str
    watermark_advanced: bool
