"""A row is acknowledged only once it is on disk: fdatasync with group commit, a bounded-loss flusher,
and new files and folders synced into their parents (os's sync calls observed, nothing mocked away)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from logfiles import row

from ticket_ab import durable, logwriter
from ticket_ab.durable import EVERY, INTERVAL
from ticket_ab.logstore import FEEDBACK, REQUESTS, shard_files
from ticket_ab.logwriter import LogWriteError, ShardedLog
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests


class Syncs:
    """Every fdatasync of this process: which file, how many bytes it held then; optionally slow or failing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, int]] = []
        self.delay_s = delay_s
        self.fail: OSError | None = None
        self.lock = threading.Lock()
        real = os.fdatasync

        def fdatasync(fd: int) -> None:
            if self.fail is not None:
                raise self.fail
            time.sleep(self.delay_s)  # a disk's flush latency, so that appenders overlap
            real(fd)
            with self.lock:
                self.calls.append((os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))

        monkeypatch.setattr(durable.os, "fdatasync", fdatasync)

    def covering(self, path: Path, size: int) -> int:
        with self.lock:
            return sum(1 for name, synced in self.calls if name == str(path) and synced >= size)


def feedback(i: int) -> dict[str, object]:
    return {"timestamp": "2026-11-24T11:00:00.000+00:00", "request_id": f"r{i}", "label": "billing", "source": "api"}


def test_an_every_log_returns_only_after_a_sync_covering_the_row(tmp_path, monkeypatch):
    syncs = Syncs(monkeypatch)
    log = ShardedLog(tmp_path, FEEDBACK, FEEDBACK_COLUMNS, sync=EVERY)
    for i in range(3):
        log.append(feedback(i))
        (path,) = log.files()
        assert syncs.covering(path, path.stat().st_size) >= 1, f"row {i} acknowledged before it was synced"


def test_concurrent_appenders_share_syncs_and_each_row_is_covered_before_its_append_returns(tmp_path, monkeypatch):
    syncs = Syncs(monkeypatch, delay_s=0.02)
    log = ShardedLog(tmp_path, FEEDBACK, FEEDBACK_COLUMNS, sync=EVERY)
    log.append(feedback(-1))
    uncovered: list[int] = []

    def append(i: int) -> None:
        log.append(feedback(i))
        path = log.files()[0]
        size = next(n for n, line in enumerate(path.read_bytes().splitlines(keepends=True), 1)
                    if f",r{i},".encode() in line)
        written = sum(len(line) for line in path.read_bytes().splitlines(keepends=True)[:size])
        if not syncs.covering(path, written):
            uncovered.append(i)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(40)]
    before = len(syncs.calls)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert uncovered == []
    assert len(syncs.calls) - before < 40, "group commit: concurrent rows share fdatasyncs"
    assert len(read_feedback(tmp_path).rows) == 41


def test_a_failed_sync_fails_the_append_so_the_sender_retries_and_the_log_says_so(tmp_path, monkeypatch):
    syncs = Syncs(monkeypatch)
    log = ShardedLog(tmp_path, FEEDBACK, FEEDBACK_COLUMNS, sync=EVERY)
    log.append(feedback(0))
    syncs.fail = OSError(5, "Input/output error")
    with pytest.raises(LogWriteError, match="Input/output error"):
        log.append(feedback(1))
    assert log.error is not None and log.failures == 1
    syncs.fail = None
    log.append(feedback(2))
    assert log.check() is None


def test_an_interval_log_answers_without_waiting_for_a_sync_and_syncs_on_close(tmp_path, monkeypatch):
    syncs = Syncs(monkeypatch)
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS, sync=INTERVAL, sync_interval_s=60)
    log.append(row("first"))
    (path,) = log.files()
    assert not syncs.covering(path, path.stat().st_size)  # in the page cache, within the stated window
    log.close()
    assert syncs.covering(path, path.stat().st_size)
    assert read_requests(tmp_path).rows["request_id"].tolist() == ["first"]


def test_an_interval_logs_flusher_syncs_its_rows_within_the_interval(tmp_path, monkeypatch):
    syncs = Syncs(monkeypatch)
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS, sync=INTERVAL, sync_interval_s=0.05)
    log.append(row("first"))
    (path,) = log.files()
    size = path.stat().st_size
    deadline = time.monotonic() + 5
    while not syncs.covering(path, size):
        assert time.monotonic() < deadline, "the flusher did not sync the row within 5 s"
        time.sleep(0.01)
    log.close()


def test_new_day_folders_and_files_are_synced_into_their_parents(tmp_path, monkeypatch):
    synced_dirs: list[Path] = []
    real = durable.sync_dir
    for module in (durable, logwriter):
        monkeypatch.setattr(module, "sync_dir", lambda path: synced_dirs.append(Path(path)) or real(path))
    log = ShardedLog(tmp_path, FEEDBACK, FEEDBACK_COLUMNS, sync=EVERY)
    log.append(feedback(0))
    (path,) = shard_files(tmp_path, FEEDBACK)
    day, kind = path.parent, path.parent.parent
    assert {tmp_path, kind, day} <= set(synced_dirs)  # the kind folder, the day folder and the file's entry


def test_a_file_closed_at_rollover_is_synced_first(tmp_path, monkeypatch):
    syncs = Syncs(monkeypatch)
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS, sync=INTERVAL, sync_interval_s=60, max_bytes=4096)
    for i in range(20):
        log.append(row(f"r{i}", text="x" * 400))
    files = shard_files(tmp_path, REQUESTS)
    assert len(files) > 1
    for closed in files[:-1]:
        assert syncs.covering(closed, closed.stat().st_size), f"{closed.name} closed without a sync"
