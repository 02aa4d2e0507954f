"""Task `compact_logs`: every closed day of both logs becomes one Parquet day file, before the report's retention.

It runs after `collect_window` has read the window and before `report`, whose retention then removes
whole day folders, Parquet or CSV alike. A day that cannot be compacted stays readable as CSV and is
tried again by the next run, so a failure is logged and counted, never fatal: it must not keep the
report from moving the watermark.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ticket_ab.compact import compact_closed
from ticket_ab.log import get_logger, kv
from ticket_ab.settings import Settings

log = get_logger("dag")


def compact_logs(settings: Settings) -> dict[str, int]:
    """Compact the closed days under the log root; the run's figures, also logged as one `compact_logs` line."""
    run = compact_closed(settings.logs_dir, datetime.now(UTC).date())
    for failure in run.failed:
        log.warning(kv("compact_logs_failed", day=failure))
    figures = {"days": len(run.days), "rows": sum(d.rows for d in run.days),
               "malformed": sum(d.malformed for d in run.days), "files_removed": sum(d.removed for d in run.days),
               "bytes_before": sum(d.bytes_before for d in run.days),
               "bytes_after": sum(d.bytes_after for d in run.days), "failed": len(run.failed)}
    log.info(kv("compact_logs", **figures))
    return figures
