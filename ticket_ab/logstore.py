"""Where the request and feedback logs live on disk: one folder per UTC day, one file per writer.

    {root}/requests/date=2026-11-24/requests-{host}-{pid}-{start}-{seq}.csv
    {root}/feedback/date=2026-11-24/feedback-{host}-{pid}-{start}-{seq}.csv

No file has two writers (host, process id and the writer's start time are in its name), so
replicas on several hosts can share one root on a shared volume without any cross-process lock.
The `date=` folders (the Hive partition style that object-storage sync tools and query engines
understand) let a reader open only the days a time range overlaps, so a read costs the window
instead of the history, and let retention remove whole days.

A closed day may be compacted (`ticket_ab.compact`) into one Parquet file beside its shards:

    {root}/requests/date=2026-11-24/requests-2026-11-24.parquet

It records the shards folded into it, so a shard it lists and that is still there (a compaction
cut short before it removed them) is a leftover readers skip, and any other is read as well.
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
SHARD_SUFFIX, COMPACTED_SUFFIX = ".csv", ".parquet"
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def partition_dir(root: Path, kind: str, day: date) -> Path:
    """The folder of one UTC day of one log."""
    return Path(root) / kind / f"{PARTITION_PREFIX}{day.isoformat()}"


def shard_name(kind: str, host: str, pid: int, start: str, seq: int) -> str:
    """A file name no other writer can choose; the host keeps letters, digits and dots, so `-` splits the name."""
    return f"{kind}-{_UNSAFE.sub('_', host) or 'host'}-{pid}-{start}-{seq:04d}{SHARD_SUFFIX}"


def compacted_file(root: Path, kind: str, day: date) -> Path:
    """The one Parquet file a closed day of `kind` is compacted into (a shard name ends in .csv: they never meet)."""
    return partition_dir(root, kind, day) / f"{kind}-{day.isoformat()}{COMPACTED_SUFFIX}"


def csv_shards(folder: Path, kind: str) -> list[Path]:
    """The writers' CSV files in one day folder, by name."""
    return sorted(folder.glob(f"{kind}-*{SHARD_SUFFIX}"))


def day_files(folder: Path, kind: str) -> list[Path]:
    """Every log file of one day folder: its compacted Parquet file (when it has one) first, then its shards."""
    return sorted(folder.glob(f"{kind}-*{COMPACTED_SUFFIX}")) + csv_shards(folder, kind)


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
    """Every log file of the days between `first` and `last`, by day (see `day_files`)."""
    return [file for _, folder in partitions(root, kind, first, last) for file in day_files(folder, kind)]


def expire(root: Path, retention_days: int, today: date, keep_from: date) -> list[Path]:
    """Remove the day folders older than `retention_days` before `today`, never one on or after `keep_from`.

    `keep_from` is the day of the DAG's watermark: the next window reads from that day on, so no
    partition it still needs can go. A folder goes whole: its shards and its compacted Parquet file.
    0 days keeps everything. Returns the folders removed.
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
