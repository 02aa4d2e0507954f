"""The window's typing step on a dask.distributed cluster: one task per day partition, the rows one process types.

Typing every raw row (reading the CSV shards and Parquet day files, parsing stamps and numbers: `analysis.prepare`'s
`typed_requests` and `typed_feedback`) is the part of the report's preparation that grows with the window (about
13 s of 35 s at 10M requests). The log root is partitioned by day and a day's files hold that day's rows whole, so
each day is typed on its own: a task opens its own DuckDB (`ticket_ab.logscan`) over that day's files only, writes
the typed rows into the run's scratch folder as two Parquet files and returns the day's malformed lines, counted by
logscan's own code. This process then reads `req_typed` and `fb` as views over those files, and the rest of
`analysis.prepare` and of the report run unchanged: both engines give one report
(tests/integration/analysis/test_prepare_on_dask.py).

Only the typing moves: duplicates, versions, labels and the statistics still run here, on typed columns (a few
bytes a row where the raw rows carry texts). The views `raw_requests` and `raw_feedback` are made here too (CUPAC
reads a few logged texts from them) but not scanned: the malformed counts come from the tasks.

The workers read the log files and write the scratch by path: on a cluster of several hosts, the log root and
TICKET_AB_TEST_DASK_SCRATCH must be on volumes every worker and this process mount at the same paths, and the
workers need this project installed (they import this module to run the task). That is why the scheduler is a
setting of its own, not the AutoML's (`retrain.ml.cluster`): that cluster is sent its data with its tasks and
need not mount the logs; and its module imports PyCaret, which this one keeps out of the workers.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dask
import duckdb
import pandas as pd
from dask.distributed import Client, LocalCluster
from dask.utils import parse_timedelta

from analysis.prepare import UNREADABLE_FEEDBACK, Prepared, from_typed, prepare, typed_feedback, typed_requests
from ticket_ab import logscan
from ticket_ab.logstore import FEEDBACK, KINDS, REQUESTS, partition_dir, partitions
from ticket_ab.settings import ABSettings

DASK = "dask"  # ABSettings.prepare_engine's value that sends the typing to a cluster
SCHEDULER_ENV, SCRATCH_ENV = "TICKET_AB_TEST_DASK_SCHEDULER", "TICKET_AB_TEST_DASK_SCRATCH"
SCRATCH_PREFIX = "ticket-ab-typed-"
# Without a dashboard the scheduler still serves HTTP, on 8787 unless told otherwise: any free loopback port instead.
NO_DASHBOARD_PORT = {"dashboard_address": "127.0.0.1:0"}


class ClusterError(RuntimeError):
    """The dask engine could not type the window: its scheduler cannot be used, or a day task failed (one line)."""


@dataclass(frozen=True)
class TypedDay:
    """What one day task returns: where its typed rows are and the day's malformed lines."""

    day: date
    requests: str  # Parquet file of the day's typed request rows (`req_typed`'s)
    feedback: str  # and of its typed feedback rows (`fb`'s)
    malformed: dict[str, int]  # per log kind, lines skipped as not a whole row (`ticket_ab.logscan`)
    unreadable_feedback: int  # feedback rows whose stamp did not read (not in the typed rows)


@dataclass
class OnDask:
    """The prepared window (`Prepared`), the views' scan with the tasks' malformed counts, and the statement of
    where the window was typed (the report's note)."""

    scan: logscan.Scan
    prepared: Prepared
    statement: str


def window_days(root: Path, feedback_root: Path, since: pd.Timestamp | None) -> list[date]:
    """The day partitions of the window, oldest first: a day folder of either log from `since`'s day on (every
    day: None) is one task, so a day with feedback and no requests is typed too, as the embedded path reads it."""
    first = since.date() if since is not None else None
    return sorted({day for kind, base in ((REQUESTS, root), (FEEDBACK, feedback_root))
                   for day, _ in partitions(base, kind, first)})


def type_day(day: date, root: str, feedback_root: str, since: pd.Timestamp | None, out: str,
             memory_mb: int) -> TypedDay:
    """The task: `day`'s files of both logs typed into two Parquet files in `out`, and the day's counts.

    DuckDB gets one thread: a worker runs as many tasks at once as it has threads, so the cluster's slots are the
    parallelism. A day folder this worker cannot see is an error, never an empty day (a worker on another host
    without the log volume would otherwise drop that day's rows without a word).
    """
    folders = [Path(partition_dir(base, kind, day)) for kind, base in ((REQUESTS, root), (FEEDBACK, feedback_root))]
    if not any(folder.is_dir() for folder in folders):
        raise FileNotFoundError(f"worker on {socket.gethostname()} sees no {folders[0]}: every worker must see the "
                                "log root at the path the analysis reads it from")
    requests, feedback = (Path(out) / f"{kind}-{day.isoformat()}.parquet" for kind in (REQUESTS, FEEDBACK))
    with logscan.connect(memory_mb, threads=1) as con:
        scan = logscan.files(con, Path(root), Path(feedback_root), since, day=day)
        con.execute(f"COPY ({typed_requests(since)}) TO {_literal(requests)} (FORMAT parquet)")
        con.execute(f"COPY ({typed_feedback(since)}) TO {_literal(feedback)} (FORMAT parquet)")
        unreadable = int(con.execute(UNREADABLE_FEEDBACK).fetchone()[0])
    return TypedDay(day, str(requests), str(feedback), dict(scan.malformed), unreadable)


@contextmanager
def prepared_on_dask(con: duckdb.DuckDBPyConnection, root: Path, feedback_root: Path, since: pd.Timestamp | None,
                     th: ABSettings) -> Iterator[OnDask]:
    """The window from `since` on prepared in `con` (`analysis.prepare.from_typed`) from rows typed on the cluster
    of `th.dask_scheduler`; the cluster is closed once the days are typed, the scratch once the caller is done."""
    scan = logscan.files(con, root, feedback_root, since, count=False)  # the views, without counting: the tasks do
    days = window_days(root, feedback_root, since)
    with scratch(th.dask_scratch) as out:
        if not days:  # nothing to type, nothing to start: the (empty) views typed here
            yield OnDask(scan, prepare(con, since), "")
            return
        with cluster(th.dask_scheduler) as client:
            typed = fan_out(client, days, root, feedback_root, since, out, th.memory_mb)
            workers = len(client.nthreads())
        for kind, view in ((REQUESTS, "req_typed"), (FEEDBACK, "fb")):
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({_files(typed, kind)})")
        scan.malformed = {kind: sum(day.malformed[kind] for day in typed) for kind in KINDS}
        prepared = from_typed(con, sum(day.unreadable_feedback for day in typed))
        where = f"the scheduler at {th.dask_scheduler}" if th.dask_scheduler else "a LocalCluster of this machine"
        yield OnDask(scan, prepared, f"prepared on dask: {len(typed)} day tasks on {workers} workers ({where}) typed "
                                     "the raw log rows; duplicates, labels and statistics ran in this process")


def fan_out(client: Client, days: list[date], root: Path, feedback_root: Path, since: pd.Timestamp | None,
            out: Path, memory_mb: int) -> list[TypedDay]:
    """One `type_day` task per day, their results in day order; a failed task is a ClusterError naming its day.
    Paths go to the workers absolute: a worker's working folder is not this process's."""
    roots = {"root": str(Path(root).resolve()), "feedback_root": str(Path(feedback_root).resolve())}
    futures = client.map(type_day, days, **roots, since=since, out=str(out.resolve()), memory_mb=memory_mb,
                         pure=False)  # the tasks write files: never a result cached under the same arguments
    typed = []
    for day, future in zip(days, futures, strict=True):
        try:
            typed.append(future.result())
        except Exception as exc:  # a folder or the scratch not there on a worker, a file unreadable, a worker killed
            # (out of memory: dask's KilledWorker), the project not installed there: one line each, not a traceback
            raise ClusterError(f"the day task of {day} failed: {_one_line(exc)}") from None
    missing = [f for t in typed for f in (t.requests, t.feedback) if not Path(f).is_file()]
    if missing:
        raise ClusterError(f"{len(missing)} typed files of the day tasks are not here (first: {missing[0]}): the "
                           f"workers write them on their hosts; set {SCRATCH_ENV} to a folder they and this process "
                           "share")
    return typed


@contextmanager
def scratch(folder: str) -> Iterator[Path]:
    """A fresh folder for one run's typed rows inside `folder` (the system's temporary folder when empty), removed
    afterwards however the run ends; a `folder` that cannot hold one is a ClusterError."""
    try:
        holder = tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=folder or None)
    except OSError as exc:
        raise ClusterError(f"cannot make a scratch folder in {folder} ({SCRATCH_ENV}): {exc.strerror or exc}") from None
    with holder as path:
        yield Path(path)


@contextmanager
def cluster(scheduler: str) -> Iterator[Client]:
    """A client of the scheduler at `scheduler`, or of a LocalCluster of this machine's cores (one single-threaded
    worker process per core) when it is empty; closed, with whatever was started for it, afterwards."""
    if scheduler:
        with _connect(scheduler) as client:
            yield client
        return
    with (LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True, host="127.0.0.1",
                       dashboard_address=None, scheduler_kwargs=NO_DASHBOARD_PORT) as local,
          Client(local) as client):
        yield client


def _connect(address: str) -> Client:
    """A client of the scheduler at `address` with at least one worker, or the one-line ClusterError. How long to
    wait is dask's own connect timeout (`distributed.comm.timeouts.connect`, 30 s unless configured)."""
    timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
    try:
        client = Client(address, timeout=timeout)
    except Exception as exc:  # the comm layer raises OSError, TimeoutError, ValueError, even AssertionError
        raise ClusterError(f"cannot use the dask scheduler at {address} ({SCHEDULER_ENV}): {_one_line(exc)}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # dask's WorkerStartTimeoutError, or the scheduler gone meanwhile
        client.close()
        raise ClusterError(f"cannot use the dask scheduler at {address} ({SCHEDULER_ENV}): no worker joined within "
                           f"{timeout:g} s") from None
    return client


def _files(typed: list[TypedDay], kind: str) -> str:
    return "[" + ", ".join(_literal(day.requests if kind == REQUESTS else day.feedback) for day in typed) + "]"


def _literal(path: str | Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
