"""Crash-safe file replacement: the router's config and cache manifests, the DAG's watermark, the label store.

Readers see the old file or the new one, never half of either, even if the writer dies mid-write;
`exclusive` makes read-modify-write cycles take turns (the kernel drops the lock of a dead process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ticket_ab.durable import sync_dir


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` via a fsynced temp file and a rename (the temp file never lingers)."""
    replace_file(path, lambda fh: fh.write(text.encode("utf-8")))


def replace_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace `path` with what `write` puts into a unique, fsynced temp file beside it, renamed over it
    (two writers never share a temp file; the rename is synced into the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold `lock` (an flock on a file beside the data) for a read-modify-write: one holder at a time, on
    this host or any sharing the folder where the filesystem supports flock; a crash releases it."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
