"""Test helper: build router logs by hand (importable because pytest puts tests/ on sys.path).

Rows go through the router's own writer, so they land where the router puts them (a folder per
UTC day under `root/requests` or `root/feedback`) with the checksum readers verify; `append_lines`
adds raw text to a file, for the torn and hand-edited lines a reader must count and skip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ticket_ab.logstore import FEEDBACK, REQUESTS, shard_files
from ticket_ab.logwriter import ShardedLog
from ticket_ab.requestlog import REQUEST_COLUMNS


def append_rows(root: Path, columns: tuple[str, ...], rows: Sequence[Sequence[object] | Mapping[str, object]]
                ) -> list[Path]:
    """Write `rows` (lists in `columns` order, or dicts) into the log root `root`; returns the new files."""
    kind = REQUESTS if tuple(columns) == REQUEST_COLUMNS else FEEDBACK
    before = set(shard_files(root, kind))
    writer = ShardedLog(root, kind, columns)
    for values in rows:
        writer.append(values if isinstance(values, Mapping) else dict(zip(columns, values, strict=True)))
    writer.close()
    return sorted(set(shard_files(root, kind)) - before)


def append_lines(path: Path, *lines: str) -> None:
    """Append raw text (no newline added) to a log file, as a crash or a hand edit would leave it."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))
