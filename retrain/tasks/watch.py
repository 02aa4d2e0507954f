"""The log watcher's one task: are there enough new tickets since the watermark to be worth a DAG run?

The retrain DAG is scheduled by the request-log asset (or, as a fallback, by time). The watcher DAG
runs every `TICKET_AB_WATCH_INTERVAL_S` and emits that asset only when at least
`TICKET_AB_MIN_WINDOW` usable tickets arrived since the watermark, so a quiet day wastes no run and a
burst of drifted traffic is retrained within minutes. Counting reads only the day folders from the
watermark on, with the same rules the DAG's window uses (`window.count_new`: text present, first
occurrence of a request id, settled rows only), out of core, so "due" here means the window will have the rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from retrain.tasks import window as win
from ticket_ab.settings import Settings


@dataclass(frozen=True)
class Watched:
    """What the watcher counted, and whether the retrain DAG is due."""

    new_tickets: int
    min_window: int
    since: str | None

    @property
    def due(self) -> bool:
        return self.new_tickets >= self.min_window

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "due": self.due}

    def reason(self) -> str:
        verdict = "due" if self.due else "not due"
        return (f"{self.new_tickets} new tickets since {self.since or 'the beginning'} "
                f"(TICKET_AB_MIN_WINDOW {self.min_window}): retrain {verdict}")


def count_new_tickets(settings: Settings) -> Watched:
    """Usable request rows after the watermark and before the settle cutoff (see `window.collect`)."""
    watermark = win.load_watermark(win.watermark_path(settings.airflow_dir))
    until = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=settings.log.settle_s)
    new = win.count_new(settings.logs_dir, watermark, until, settings.ab.memory_mb)
    return Watched(new_tickets=new, min_window=settings.drift.min_window, since=watermark.requests_until)
