"""Append CSV rows that concurrent workers and threads can never interleave or tear.

Each row is rendered to one complete line first, then written with a single `os.write` on an
O_APPEND descriptor while holding an exclusive `flock`. The lock serialises writers across gunicorn
workers and threads; the single write means a worker killed mid-request either wrote the whole
line or nothing. Under the same lock the writer adds the header to a new file, finishes a line a
foreign writer left torn (so our row is not glued onto it), and reopens the path if the file was
moved away (a rotated or archived log must not swallow new rows).
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

_CONTROL = {c: " " for c in range(32)} | {0x7F: " "}


def one_line(value: object) -> str:
    """A field as one physical line: control characters removed, any whitespace run folded to a space."""
    if value is None:
        return ""
    return " ".join(str(value).translate(_CONTROL).split())


def render(columns: Sequence[str], row: Mapping[str, object]) -> str:
    """The CSV line for `row` (missing columns are empty), ending in exactly one newline."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([one_line(row.get(c)) for c in columns])
    return buf.getvalue()


class CsvAppender:
    """Thread- and process-safe appends of whole rows to one CSV file with a fixed header."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self._header = render(self.columns, dict(zip(self.columns, self.columns, strict=True))).encode()
        self._fd: int | None = None
        self._lock = threading.Lock()  # flock is per open file, so threads also need a lock

    def append(self, row: Mapping[str, object]) -> None:
        """Write `row` as one line; returns once the line is in the file (page cache)."""
        line = render(self.columns, row).encode("utf-8", "replace")  # JSON allows lone surrogates
        with self._lock:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if self._moved(fd):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    self._close_fd()
                    fd = self._open()
                    fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size == 0:
                    line = self._header + line
                elif os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                _write_all(fd, line)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the descriptor (the next append reopens it)."""
        with self._lock:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._fd

    def _moved(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return True
        mine = os.fstat(fd)
        return (on_disk.st_ino, on_disk.st_dev) != (mine.st_ino, mine.st_dev)


def _write_all(fd: int, data: bytes) -> None:
    """One write(2) in practice; loops only on a short write (e.g. disk nearly full)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
