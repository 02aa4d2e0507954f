"""Where the request and feedback logs live on disk: one folder per UTC day, one file per writer.

    {root}/requests/date=2026-11-24/requests-{host}-{pid}-{start}-{seq}.csv
    {root}/feedback/date=2026-11-24/feedback-{host}-{pid}-{start}-{seq}.csv

No file has two writers (host, process id and the writer's start time are in its name), so
replicas on several hosts can share one root on a shared volume without any cross-process lock.
The `date=` folders (the Hive partition style that object-storage sync tools and query engines
understand) let a reader open only the days a time range overlaps, so a read costs the window
instead of the history, and let retention remove whole days.
"""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

REQUESTS = "requests"
FEEDBACK = "feedback"
KINDS = (REQUESTS, FEEDBACK)
PARTITION_PREFIX = "date="
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def partition_dir(root: Path, kind: str, day: date) -> Path:
    """The folder of one UTC day of one log."""
    return Path(root) / kind / f"{PARTITION_PREFIX}{day.isoformat()}"


def shard_name(kind: str, host: str, pid: int, start: str, seq: int) -> str:
    """A file name no other writer can choose; the host keeps letters, digits and dots, so `-` splits the name."""
    return f"{kind}-{_UNSAFE.sub('_', host) or 'host'}-{pid}-{start}-{seq:04d}.csv"


def partitions(root: Path, kind: str, first: date | None = None, last: date | None = None) -> list[tuple[date, Path]]:
    """The day folders of `kind` between `first` and `last` (inclusive, None: open), oldest first.

    Only folder names are read; a folder whose name is not `date=YYYY-MM-DD` is not a partition.
    """
    base = Path(root) / kind
    if not base.is_dir():
        return []
    found = []
    for path in base.iterdir():
        if not path.name.startswith(PARTITION_PREFIX) or not path.is_dir():
            continue
        try:
            day = date.fromisoformat(path.name[len(PARTITION_PREFIX):])
        except ValueError:
            continue
        if (first is None or day >= first) and (last is None or day <= last):
            found.append((day, path))
    return sorted(found)


def shard_files(root: Path, kind: str, first: date | None = None, last: date | None = None) -> list[Path]:
    """Every log file of the days between `first` and `last`, by day, then by name."""
    return [file for _, folder in partitions(root, kind, first, last) for file in sorted(folder.glob(f"{kind}-*.csv"))]


def expire(root: Path, retention_days: int, today: date, keep_from: date) -> list[Path]:
    """Remove the day folders older than `retention_days` before `today`, never one on or after `keep_from`.

    `keep_from` is the day of the DAG's watermark: the next window reads from that day on, so no
    partition it still needs can go. 0 days keeps everything. Returns the folders removed.
    """
    if retention_days <= 0:
        return []
    cutoff = min(today - timedelta(days=retention_days), keep_from)
    removed = []
    for kind in KINDS:
        for _, folder in partitions(root, kind, last=cutoff - timedelta(days=1)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
