"""Append CSV rows so that a reader can tell a whole row from a torn or edited one, for certain.

The line format: the CSV fields of the row (each folded to one physical line), then a last field
`crc`, the CRC-32 of the bytes before it as 8 hex digits. Every file starts with the header line
(`...,crc`). A row is rendered to one complete line first and written with a single `os.write`
on an O_APPEND descriptor. If that write fails or comes up short (disk full, file-size limit, I/O
error), the file is truncated back to its size before the write, so no half row stays behind, and
the caller gets a `LogWriteError` instead of a silently lost row.

`ShardedLog` is one process's writer of one log (requests or feedback): it owns its files alone
(see `ticket_ab.logstore` for the names), so threads share them under a `threading.Lock`
and no cross-process lock is needed. It rolls over to a new file when a row's UTC date changes
(the row goes to its own day's folder) or the file would pass `max_bytes`.

When `append` returns, the row is as durable as the log's policy says (`ticket_ab.durable`):
`every` returns only after an fdatasync covering the row (shared by concurrent appenders: group
commit), `interval` after the write, with a flusher syncing every `sync_interval_s` (at most that
much is lost to a power cut). New files and folders are synced into their parent either way, and a
file is synced before it is closed.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from ticket_ab.durable import (
    EVERY,
    FILE_MODE,
    INTERVAL,
    LOG_DIR_MODE,
    POLICIES,
    Flusher,
    GroupCommit,
    make_dirs,
    sync_dir,
    sync_fds,
)
from ticket_ab.logstore import partition_dir, shard_name

CRC = "crc"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_CONTROL = {c: " " for c in range(32)} | {0x7F: " "}
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class LogWriteError(OSError):
    """A row could not be written; the log file holds no part of it."""


def one_line(value: object) -> str:
    """A field as one physical line: control characters removed, any whitespace run folded to a space."""
    if value is None:
        return ""
    return " ".join(str(value).translate(_CONTROL).split())


def render(columns: Sequence[str], row: Mapping[str, object]) -> str:
    """The CSV fields of `row` (missing columns are empty) as one line, without checksum or newline."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([one_line(row.get(c)) for c in columns])
    return buf.getvalue()


def encode_line(columns: Sequence[str], row: Mapping[str, object]) -> bytes:
    """The bytes a row is stored as: its fields, `,` and the CRC-32 of the fields' bytes, newline."""
    body = render(columns, row).encode("utf-8", "replace")  # JSON allows lone surrogates
    return b"%s,%08x\n" % (body, zlib.crc32(body))


def header(columns: Sequence[str]) -> bytes:
    """A file's first line: the column names, then `crc`."""
    return (",".join((*columns, CRC)) + "\n").encode()


def verify(line: bytes) -> bytes | None:
    """The row's fields if `line` (without its newline) carries a matching checksum, else None."""
    if len(line) < 10 or line[-9] != ord(","):
        return None
    try:
        crc = int(line[-8:], 16)
    except ValueError:
        return None
    body = line[:-9]
    return body if zlib.crc32(body) == crc else None


def utc_day(stamp: object) -> date:
    """The UTC date of an ISO timestamp: the day folder of its row (today when it is unreadable)."""
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return datetime.now(UTC).date()
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


@dataclass
class _Shard:
    fd: int
    path: Path
    size: int


class ShardedLog:
    """One process's appends to one log, in files of its own under the day folders of `root/kind`."""

    def __init__(self, root: Path, kind: str, columns: Sequence[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
                 host: str | None = None, sync: str = EVERY, sync_interval_s: float = 0.2) -> None:
        if sync not in POLICIES:
            raise ValueError(f"log sync policy must be one of {POLICIES}, got {sync!r}")
        self.root = Path(root)
        self.kind = kind
        self.columns = tuple(columns)
        self.max_bytes = max_bytes
        self.sync, self.sync_interval_s = sync, sync_interval_s
        self._commit = GroupCommit()
        self._flusher: Flusher | None = None
        self.failures = 0  # rows lost to write errors since this writer started
        self.error: str | None = None  # why the last write failed; None once one succeeds again
        self._header = header(self.columns)
        self._host = host or socket.gethostname()
        self._lock = threading.Lock()
        self._shards: dict[date, _Shard] = {}
        self._pid = -1
        self._start = ""
        self._seq = 0
        self._failed_at = (date.today(), 1)  # the day and size of the row that failed last

    def append(self, row: Mapping[str, object]) -> None:
        """Write `row` as one line in its day's file, durable by the log's policy; raises LogWriteError
        (and leaves no trace) if it cannot be written, or if the sync an `every` log waits for fails."""
        line = encode_line(self.columns, row)
        day = utc_day(row.get("timestamp"))
        with self._lock:
            try:
                ticket = self._write(day, line)
            except OSError as exc:
                self._failed_at = (day, len(line))
                self._failed(exc)
                raise LogWriteError(exc.errno, self.error) from exc
            self.error = None
        if self.sync == EVERY:
            try:
                self._commit.wait(ticket)
            except OSError as exc:  # written, but maybe not on disk: the sender must retry
                with self._lock:
                    self._failed(exc)
                raise LogWriteError(exc.errno, self.error) from exc

    def check(self) -> str | None:
        """None when the log takes rows; else why not, after trying again.

        A failed log is retried here with a probe the size of the row that failed, in its file
        (blank lines, truncated away at once), so a replica taken out of a load balancer because of its log comes
        back as soon as the disk has room again, without waiting for a real row.
        """
        with self._lock:
            if self.error is None:
                return None
            day, size = self._failed_at
            try:
                self._write(day, b"\n" * size, keep=False)
            except OSError as exc:
                self._failed(exc, lost=False)
                return self.error
            self.error = None
            return None

    def files(self) -> list[Path]:
        """The files this writer has open now."""
        with self._lock:
            return [shard.path for shard in self._shards.values()]

    def close(self) -> None:
        """Sync and close every file (the next append starts new ones)."""
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None
        with self._lock:
            for day in list(self._shards):
                self._close(day)

    def _failed(self, exc: OSError, *, lost: bool = True) -> None:
        self.failures += lost
        where = f" ({exc.filename})" if exc.filename else ""
        self.error = f"{self.kind} log not writable under {self.root}: {exc.strerror or exc}{where}"

    def _write(self, day: date, line: bytes, *, keep: bool = True) -> int:
        """Write `line` (under the lock); the group-commit ticket of the write (0 for a probe not kept)."""
        shard = self._shard(day, len(line))
        before = shard.size
        try:
            _write_all(shard.fd, line)
        except OSError:
            self._undo(day, shard, before)
            raise
        if not keep:
            self._undo(day, shard, before)
            return 0
        shard.size += len(line)
        return self._commit.written(shard.fd)

    def _undo(self, day: date, shard: _Shard, size: int) -> None:
        """Cut the file back to `size`; if even that fails, leave the file (its torn tail is one bad line)."""
        try:
            os.ftruncate(shard.fd, size)
        except OSError:
            self._close(day)

    def _shard(self, day: date, incoming: int) -> _Shard:
        if self._pid != os.getpid():  # a fork copied this writer: the child gets files and a flusher of its own
            for shard in self._shards.values():
                os.close(shard.fd)
            self._shards.clear()
            self._pid, self._start, self._seq = os.getpid(), datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"), 0
            self._commit = GroupCommit()
            self._flusher = (Flusher(self._commit, self.sync_interval_s, self._flush_failed)
                             if self.sync == INTERVAL else None)
        shard = self._shards.get(day)
        if shard is not None and shard.size + incoming > self.max_bytes and shard.size > len(self._header):
            self._close(day)
            shard = None
        if shard is None:
            shard = self._shards[day] = self._open(day)
            # Keep two days open (rows stamped just before midnight), never closing the one just opened.
            for older in sorted(d for d in self._shards if d != day)[:-1]:
                self._close(older)
        return shard

    def _open(self, day: date) -> _Shard:
        folder = partition_dir(self.root, self.kind, day)
        make_dirs(folder, LOG_DIR_MODE)
        while True:
            self._seq += 1
            path = folder / shard_name(self.kind, self._host, self._pid, self._start, self._seq)
            try:
                fd = os.open(path, _OPEN_FLAGS, FILE_MODE)
                break
            except FileExistsError:
                continue
        try:
            _write_all(fd, self._header)
            sync_fds([fd])
            sync_dir(folder)  # the new file's name is on disk too, not only its bytes
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return _Shard(fd, path, len(self._header))

    def _close(self, day: date) -> None:
        """Sync, then close: rows of an `interval` log are not left to the page cache at a rollover."""
        shard = self._shards.pop(day, None)
        if shard is None:
            return
        self._commit.forget(shard.fd)
        try:
            sync_fds([shard.fd])
        except OSError as exc:  # what is not on disk now will not get there: say so, keep going
            self._failed(exc, lost=False)
        os.close(shard.fd)

    def _flush_failed(self, exc: OSError) -> None:
        """The flusher's sync failed: the log reports it (GET /ready) until a write succeeds again."""
        with self._lock:
            self._failed(exc, lost=False)


def _write_all(fd: int, data: bytes) -> None:
    """One write(2) in practice; loops only on a short write, whose next write names the error."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
