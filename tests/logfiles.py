"""Test helper: build router logs by hand (importable because pytest puts tests/ on sys.path).

Rows go through the router's own writer, so they land where the router puts them (a folder per
UTC day under `root/requests` or `root/feedback`) with the checksum readers verify; `append_lines`
adds raw text to a file, for the torn and hand-edited lines a reader must count and skip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from ticket_ab.dayfile import encode_day_file
from ticket_ab.durable import INTERVAL
from ticket_ab.logstore import FEEDBACK, REQUESTS, compacted_file, shard_files
from ticket_ab.logwriter import ShardedLog
from ticket_ab.requestlog import REQUEST_COLUMNS


def append_rows(root: Path, columns: tuple[str, ...], rows: Sequence[Sequence[object] | Mapping[str, object]]
                ) -> list[Path]:
    """Write `rows` (lists in `columns` order, or dicts) into the log root `root`; returns the new files. A list may
    leave out trailing columns (a row of a writer from before they existed): they are written empty."""
    kind = REQUESTS if tuple(columns) == REQUEST_COLUMNS else FEEDBACK
    before = set(shard_files(root, kind))
    writer = ShardedLog(root, kind, columns, sync=INTERVAL, sync_interval_s=60)  # synced once, on close
    for values in rows:
        writer.append(values if isinstance(values, Mapping) else dict(zip(columns[: len(values)], values, strict=True)))
    writer.close()
    return sorted(set(shard_files(root, kind)) - before)


def append_lines(path: Path, *lines: str) -> None:
    """Append raw text (no newline added) to a log file, as a crash or a hand edit would leave it."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))


def row(request_id: str, text: str = "vpn drops", stamp: str = "2026-11-24T11:00:00.000+00:00") -> dict[str, object]:
    """One request-log row of a challenger answer, as the router logs it."""
    return {"timestamp": stamp, "request_id": request_id, "variant": "B", "model_alias": "challenger",
            "model_version": "2", "split_b": 0.5, "mode": "split", "topic": "network", "confidence": 0.91,
            "latency_ms": 2.5, "text": text}


def stamp(day: date, i: int) -> str:
    """The `i`-th second past 10:00 UTC of `day`, as the router stamps a row."""
    return f"{day.isoformat()}T10:00:{i:02d}.000+00:00"


def dated_shard(root: Path, columns: tuple[str, ...], day: date, ids: list[str], values: dict | None = None) -> None:
    """One writer's request shard of `day` with `columns` as its header (a router of that time), `values` on each
    row."""
    log = ShardedLog(root, REQUESTS, columns)
    for i, request_id in enumerate(ids):
        log.append(row(request_id, stamp=stamp(day, i)) | (values or {}))
    log.close()


def dated_day_file(root: Path, columns: tuple[str, ...], day: date, ids: list[str]) -> None:
    """A compacted request day file of `day` with only `columns` (as compaction wrote it before the others
    existed)."""
    frame = pd.DataFrame([{c: str(v) for c, v in row(request_id, stamp=stamp(day, i)).items()}
                          for i, request_id in enumerate(ids)]).reindex(columns=list(columns), fill_value="")
    target = compacted_file(root, REQUESTS, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode_day_file(frame, set(), []))
