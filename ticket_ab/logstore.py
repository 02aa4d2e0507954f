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

A root may also be an object store (`s3://bucket/prefix`, see `ticket_ab.objectstore`) holding the
archived days in the same layout: `partitions`, `day_files` and `csv_shards` list it, and
`partition_dir` and `compacted_file` name its folders and files (`RemotePath`s). Only readers use
one: writing, compaction and retention stay local, and `publish_day` copies a compacted day there.
"""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

from ticket_ab.objectstore import LogPath, Published, RemotePath, is_remote, listing, publish

REQUESTS = "requests"
FEEDBACK = "feedback"
KINDS = (REQUESTS, FEEDBACK)
PARTITION_PREFIX = "date="
SHARD_SUFFIX, COMPACTED_SUFFIX = ".csv", ".parquet"
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def partition_dir(root: str | Path, kind: str, day: date) -> LogPath:
    """The folder of one UTC day of one log (a `RemotePath` under an object-store root)."""
    return _root(root) / kind / f"{PARTITION_PREFIX}{day.isoformat()}"


def shard_name(kind: str, host: str, pid: int, start: str, seq: int) -> str:
    """A file name no other writer can choose; the host keeps letters, digits and dots, so `-` splits the name."""
    return f"{kind}-{_UNSAFE.sub('_', host) or 'host'}-{pid}-{start}-{seq:04d}{SHARD_SUFFIX}"


def compacted_file(root: str | Path, kind: str, day: date) -> LogPath:
    """The one Parquet file a closed day of `kind` is compacted into (a shard name ends in .csv: they never meet)."""
    return partition_dir(root, kind, day) / f"{kind}-{day.isoformat()}{COMPACTED_SUFFIX}"


def csv_shards(folder: LogPath, kind: str) -> list[LogPath]:
    """The writers' CSV files in one day folder, by name."""
    if isinstance(folder, RemotePath):
        return _named(listing(folder).files, f"{kind}-*{SHARD_SUFFIX}")
    return sorted(folder.glob(f"{kind}-*{SHARD_SUFFIX}"))


def day_files(folder: LogPath, kind: str) -> list[LogPath]:
    """Every log file of one day folder: its compacted Parquet file (when it has one) first, then its shards.

    A remote folder is listed once (one request, not one per pattern).
    """
    if isinstance(folder, RemotePath):
        files = listing(folder).files
        return _named(files, f"{kind}-*{COMPACTED_SUFFIX}") + _named(files, f"{kind}-*{SHARD_SUFFIX}")
    return sorted(folder.glob(f"{kind}-*{COMPACTED_SUFFIX}")) + csv_shards(folder, kind)


def partitions(
    root: str | Path, kind: str, first: date | None = None, last: date | None = None
) -> list[tuple[date, LogPath]]:
    """The day folders of `kind` between `first` and `last` (inclusive, None: open), oldest first.

    Only folder names are read; a folder whose name is not `date=YYYY-MM-DD` is not a partition. A
    missing root is an empty log; so is an object-store prefix with nothing under it, but a missing
    bucket is an `ObjectStoreError` (a wrong URL must not read as "no traffic").
    """
    if isinstance(root, Path) and root.parts[:1] == ("s3:",):
        raise ValueError(f"{root}: an s3:// URL turned into a Path (it lost a slash); pass the URL as a string")
    if is_remote(root):
        folders: list[LogPath] = list(listing(_root(root) / kind).folders)
    else:
        base = Path(root) / kind
        if not base.is_dir():
            return []
        folders = [path for path in base.iterdir() if path.name.startswith(PARTITION_PREFIX) and path.is_dir()]
    found = []
    for path in folders:
        day = _partition_day(path.name)
        if day is not None and (first is None or day >= first) and (last is None or day <= last):
            found.append((day, path))
    return sorted(found)


def _partition_day(name: str) -> date | None:
    """The day a folder name `date=YYYY-MM-DD` stands for; None for any other name."""
    if not name.startswith(PARTITION_PREFIX):
        return None
    try:
        return date.fromisoformat(name.removeprefix(PARTITION_PREFIX))
    except ValueError:
        return None


def _root(root: str | Path) -> LogPath:
    return RemotePath(str(root)) if is_remote(root) else Path(root)


def _named(files: list[RemotePath], pattern: str) -> list[LogPath]:
    """The files whose name matches `pattern` (case-sensitive, as Path.glob on Linux), by name."""
    return sorted(file for file in files if fnmatchcase(file.name, pattern))


def shard_files(root: str | Path, kind: str, first: date | None = None, last: date | None = None) -> list[LogPath]:
    """Every log file of the days between `first` and `last`, by day (see `day_files`)."""
    return [file for _, folder in partitions(root, kind, first, last) for file in day_files(folder, kind)]


def expire(root: Path, retention_days: int, today: date, keep_from: date) -> list[Path]:
    """Remove the day folders older than `retention_days` before `today`, never one on or after `keep_from`.

    `keep_from` is the day of the DAG's watermark: the next window reads from that day on, so no
    partition it still needs can go. A folder goes whole: its shards and its compacted Parquet file.
    0 days keeps everything. Returns the folders removed. An object-store root is refused: its
    retention is the bucket's lifecycle rule, and nothing here deletes remote objects.
    """
    if is_remote(root):
        raise ValueError(f"{root}: retention of an object-store root is the bucket's lifecycle rule, not expire()")
    if retention_days <= 0:
        return []
    cutoff = min(today - timedelta(days=retention_days), keep_from)
    removed = []
    for kind in KINDS:
        for _, folder in partitions(root, kind, last=cutoff - timedelta(days=1)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def publish_day(local_root: Path, remote_root: str, kind: str, day: date) -> Published:
    """Copy a day's local compacted file to the same place under an object-store root (see `objectstore.publish`:
    one verified PUT, idempotent). Only a compacted day goes: a day still in CSV shards may still change."""
    return publish(Path(compacted_file(local_root, kind, day)), compacted_file(remote_root, kind, day))


def day_file_glob(root: str | Path, kind: str) -> str:
    """Every compacted day file of `kind` under `root`, as one glob for a query engine (DuckDB's
    `read_parquet(..., hive_partitioning=true)` turns the `date=` folders into a `date` column)."""
    return f"{str(_root(root)).rstrip('/')}/{kind}/{PARTITION_PREFIX}*/{kind}-*{COMPACTED_SUFFIX}"
