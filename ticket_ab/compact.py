"""Compaction: a closed day's CSV shards of one log become one Parquet day file (`ticket_ab.dayfile`).

The shards are read by the log's own reader (`ticket_ab.requestlog.read_day`), so every line's
checksum is verified and a torn or edited line is counted and left behind, never carried over.
The day file is encoded in memory and read back (its row count must equal the checked rows), then
written to a temp name, fsynced and renamed into place (`ticket_ab.atomic`), and read back from
disk once more; only then are the shards it lists removed, and the removal synced into the folder.

Closed days: a writer keeps yesterday's file open past midnight for rows stamped just before it,
and a host whose clock lags stamps rows with the day before; so only days before yesterday (UTC)
are compacted (`OPEN_DAYS`). A clock more than a day wrong is out of scope.

Crash safety and idempotence: the day file records the shards folded into it. A crash after the
rename and before the removal leaves both; readers take the day file and skip the shards it lists
(no row is read twice), and the next run removes them. A shard it does not list (a writer that was
not done after all) is read beside it and folded in by the next run. A day without shards has
nothing to do, so running twice is running once. One compaction at a time: the DAG runs one run at
a time (`max_active_runs=1`).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from ticket_ab.atomic import replace_file
from ticket_ab.dayfile import encode_day_file, read_day_file
from ticket_ab.durable import FILE_MODE, sync_dir
from ticket_ab.logstore import KINDS, SHARD_SUFFIX, compacted_file, csv_shards, day_files, partition_dir, partitions
from ticket_ab.requestlog import LOG_COLUMNS, parse_stamps, read_day, string_rows

OPEN_DAYS = 2  # today and yesterday (UTC) may still get rows; older days are closed


class CompactionError(RuntimeError):
    """A day file did not read back with the rows it was written with; the shards were kept."""


@dataclass(frozen=True)
class Compacted:
    """What compacting one day of one log did (counts are of the whole day file)."""

    kind: str
    day: date
    path: Path
    rows: int  # rows in the day file: the shards' checked rows
    malformed: int  # lines that did not count (torn, bad checksum, wrong shape), recorded, not carried over
    removed: int  # CSV shards removed
    bytes_before: int  # the shards' bytes (and the earlier day file's, when one was extended)
    bytes_after: int  # the day file's bytes


@dataclass
class CompactionRun:
    """Every closed day compacted in one run, and the days that could not be (they stay readable as CSV)."""

    days: list[Compacted] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def last_closed(today: date) -> date:
    """The newest day no writer appends to any more (see the module docstring)."""
    return today - timedelta(days=OPEN_DAYS)


def compact_closed(root: Path, today: date | None = None) -> CompactionRun:
    """Compact every closed day of both logs that still has CSV shards, oldest first.

    A day that fails (a full disk, a day file that does not read back) is reported and left as it
    was, readable as before; the others go on.
    """
    today = today or datetime.now(UTC).date()
    run = CompactionRun()
    for kind in KINDS:
        for day, folder in partitions(Path(root), kind, last=last_closed(today)):
            if not csv_shards(folder, kind):
                continue
            try:
                run.days.append(compact_day(root, kind, day, today))
            except (OSError, ValueError, CompactionError) as exc:  # pyarrow's errors are OSError or ValueError
                run.failed.append(f"{kind} {day}: {exc}")
    return run


def compact_day(root: Path, kind: str, day: date, today: date | None = None) -> Compacted:
    """Fold the day's shards (and its earlier day file, if any) into one verified day file, then remove them.

    A day without files compacts to nothing: no day file, every count 0.
    """
    today = today or datetime.now(UTC).date()
    if day > last_closed(today):
        raise ValueError(f"{kind} {day} is open: only days up to {last_closed(today)} are compacted")
    folder, target, columns = partition_dir(root, kind, day), compacted_file(root, kind, day), LOG_COLUMNS[kind]
    listed = day_files(folder, kind)
    read = read_day(folder, kind, columns)
    fresh = {file.name for file in read.files if file.suffix == SHARD_SUFFIX}
    folded = read.folded | fresh
    before = sum(file.stat().st_size for file in listed if file.suffix != SHARD_SUFFIX or file.name in folded)
    frame, unparsed = string_rows([read], columns)
    dropped = read.dropped + [b""] * unparsed
    if fresh:
        frame = frame.loc[parse_stamps(frame["timestamp"]).sort_values(kind="stable", na_position="last").index]
        _write(target, frame, folded, dropped, columns)
    removed = _remove_shards(folder, kind, folded)
    after = target.stat().st_size if target.exists() else 0
    return Compacted(kind, day, target, len(frame), len(dropped), removed, before, after)


def _write(target: Path, frame: pd.DataFrame, shards: set[str], dropped: list[bytes],
           columns: tuple[str, ...]) -> None:
    """Put the day file in place only once its bytes read back as `frame`'s rows; read it back from disk too.

    A day file that fails the check on disk is removed again when it replaced no earlier one, so
    readers go back to the shards; an earlier one's rows live only in it now, so it is left for a person.
    """
    data = encode_day_file(frame, shards, dropped)
    _check(read_day_file(io.BytesIO(data), columns).rows, len(frame), f"{target.name} (encoded)")
    had_one = target.exists()

    def write(fh: BinaryIO) -> None:
        os.fchmod(fh.fileno(), FILE_MODE)  # as readable as the shards it replaces
        fh.write(data)

    replace_file(target, write)
    try:
        _check(read_day_file(target, columns).rows, len(frame), str(target))
    except (CompactionError, OSError, ValueError):
        if not had_one:
            target.unlink(missing_ok=True)
        raise


def _check(rows: pd.DataFrame, expected: int, where: str) -> None:
    if len(rows) != expected:
        raise CompactionError(f"{where} reads back {len(rows)} rows, not the {expected} checked rows of the shards")


def _remove_shards(folder: Path, kind: str, names: set[str]) -> int:
    """Remove the day's shards named in `names` (those its day file holds) and sync the folder; how many went."""
    gone = [shard for shard in csv_shards(folder, kind) if shard.name in names]
    for shard in gone:
        shard.unlink(missing_ok=True)
    if gone:
        sync_dir(folder)
    return len(gone)
