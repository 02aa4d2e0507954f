"""A DAG run's identity on disk and in the registry: its file name, its directory, its idempotency key."""

from __future__ import annotations

import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticket_ab.names import DAG_ID
from ticket_ab.settings import Settings

# What both DAGs (the retrain DAG and its log watcher) are: never catch up, one run at a time, no retries by default.
DAG_DEFAULTS: dict[str, Any] = {
    "start_date": datetime(2026, 1, 1, tzinfo=UTC),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": {"owner": "ticket-ab", "retries": 0},
}


def run_slug(run_id: str) -> str:
    """A run id as a file name (`manual__2026-01-01T00:00:00+00:00` has colons and a plus)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id).strip("_") or "run"


def run_key(logical_date: Any, run_id: str) -> str:
    """The idempotency key of a run: re-running a logical date must not register twice."""
    if logical_date is None:
        return f"{DAG_ID}:{run_id}"
    stamp = logical_date.isoformat() if hasattr(logical_date, "isoformat") else str(logical_date)
    return f"{DAG_ID}:{stamp}"


def run_dir(settings: Settings, run_id: str) -> Path:
    """Where a run keeps its window, reference copy, relabelled data and task results."""
    return settings.reports_dir / "runs" / run_slug(run_id)


def expire_runs(settings: Settings, keep: str) -> list[Path]:
    """Remove run folders and reports untouched for longer than TICKET_AB_LOG_RETENTION_DAYS (0: keep all),
    never those of run `keep` (the run reporting now): they hold copies of tickets, as the logs do."""
    days = settings.log.retention_days
    runs = settings.reports_dir / "runs"
    if days <= 0 or not runs.is_dir():
        return []
    cutoff, current = time.time() - days * 86400, run_slug(keep)
    removed = []
    for path in sorted(runs.iterdir()):
        if path.name.removesuffix(".md") != current and path.stat().st_mtime < cutoff:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
    return removed
