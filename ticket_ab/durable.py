"""When a write counts as kept: fsync with group commit, a bounded-loss flusher, and directories synced.

A `write(2)` lands in the page cache; only `fdatasync` puts it on the disk, and a power cut or a
host crash loses what was not synced. An fsync costs milliseconds, so concurrent appenders of one
process share it (group commit): each waits until a sync that *started after its own write* has
finished, and one thread syncs for all that are waiting. `Flusher` is the cheaper policy for rows
that may be lost within a stated window: a thread that syncs what was written every `interval_s`.
A new file is only durable once its directory entry is, so new files and folders are synced into
their parent too.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

FILE_MODE, DIR_MODE = 0o640, 0o750  # runtime data: the owner writes, its group (the pipeline) reads, others nothing
# The logs' day folders, group-writable where the umask lets them be (compose's 002; the stack's 027 keeps 0750):
# the routers create them, and the pipeline, another uid of their group, compacts and expires whole days there.
LOG_DIR_MODE = 0o770
UMASK = 0o027  # what every program the stack and the demo run creates with: at most FILE_MODE / DIR_MODE
EVERY, INTERVAL = "every", "interval"  # the two sync policies of a log (TICKET_AB_LOG_REQUEST_SYNC)
POLICIES = (EVERY, INTERVAL)


def sync_fds(fds: list[int]) -> None:
    """fdatasync each descriptor; one closed meanwhile was synced before it was closed (EBADF is fine)."""
    for fd in fds:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise


def sync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a new file or folder in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, mode: int = DIR_MODE) -> None:
    """`mkdir -p` whose every new folder is synced into its parent, so a crash cannot forget it."""
    path = Path(path)
    if path.is_dir():
        return
    make_dirs(path.parent, mode)
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        return
    sync_dir(path.parent)


class GroupCommit:
    """Concurrent writers of one process share each fdatasync.

    `written(fd)` is called under the writer's own lock right after a write and returns a ticket;
    `wait(ticket)` returns once a sync that began after that write has covered every descriptor
    written so far, or raises the OSError that sync hit (every writer it covered gets it).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._dirty: dict[int, int] = {}  # fd -> ticket of its last write
        self._issued = 0
        self._synced = 0
        self._syncing = False
        self._failed: tuple[int, int, OSError] | None = None  # (after, up to) tickets a sync failed for, and why

    def written(self, fd: int) -> int:
        with self._cond:
            self._issued += 1
            self._dirty[fd] = self._issued
            return self._issued

    def forget(self, fd: int) -> None:
        """The descriptor is about to close: the caller has synced it itself."""
        with self._cond:
            self._dirty.pop(fd, None)

    def wait(self, ticket: int) -> None:
        with self._cond:
            while True:
                if self._failed is not None and self._failed[0] < ticket <= self._failed[1]:
                    raise self._failed[2]  # a later sync may succeed, but these rows may not be on disk
                if self._synced >= ticket:
                    return
                if self._syncing:
                    self._cond.wait()
                else:
                    self._lead()

    def pending(self) -> bool:
        with self._cond:
            return self._synced < self._issued

    def sync(self) -> None:
        """Sync everything written so far (the flusher's turn, or a close)."""
        with self._cond:
            target = self._issued
        self.wait(target)

    def _lead(self) -> None:
        """Called with the condition held: sync for every writer waiting now, releasing it meanwhile."""
        self._syncing = True
        start, target, fds = self._synced, self._issued, list(self._dirty)
        self._cond.release()
        error = None
        try:
            sync_fds(fds)
        except OSError as exc:
            error = exc
        finally:
            self._cond.acquire()
            self._syncing = False
        if error is None:
            self._synced = max(self._synced, target)
            for fd in fds:
                if self._dirty.get(fd, 0) <= target:
                    self._dirty.pop(fd, None)
        else:
            self._failed = (start, target, error)
        self._cond.notify_all()


class Flusher:
    """A daemon thread that syncs a log's writes every `interval_s`: at most that much is lost to a power cut."""

    def __init__(self, commit: GroupCommit, interval_s: float, on_error: Callable[[OSError], None]) -> None:
        self._commit, self._interval_s, self._on_error = commit, interval_s, on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-flusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            if self._commit.pending():
                try:
                    self._commit.sync()
                except OSError as exc:
                    self._on_error(exc)
