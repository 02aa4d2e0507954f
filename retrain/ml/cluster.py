"""Where PyCaret's candidate fan-out runs: in this process, or on a dask.distributed cluster.

`compare_models(parallel=...)` takes PyCaret's Fugue backend; Fugue's Dask engine takes a
`dask.distributed.Client`. `open_engine` hands `select_model` that argument (None for the local
engine) and closes whatever it opened, so a LocalCluster started for one selection does not outlive
it. An address that cannot be reached, or a scheduler without workers (Fugue would wait for one
forever), is one line naming the address, not a hang or a traceback from the comm layer.

Workers import `retrain` to unpickle the candidates (`TextModel` holds only a candidate's name), so a
remote cluster's workers need this project installed at the same version as the driver.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import cloudpickle
import dask
import pandas as pd
from dask.distributed import Client, LocalCluster
from pycaret.parallel import FugueBackend

from ticket_ab.log import get_logger, kv
from ticket_ab.settings import AutoMLEngine

log = get_logger("automl.cluster")

SCHEDULER_ENV = "TICKET_AB_AUTOML_DASK_SCHEDULER"
# Without a dashboard, the scheduler still serves health and metrics over HTTP, on 8787 unless told
# otherwise (and warns when 8787 is taken): a LocalCluster takes any free loopback port instead.
NO_DASHBOARD_PORT = {"dashboard_address": "127.0.0.1:0"}
# Fugue hands its progress callback only to a parameter annotated exactly so (not `Callable | None`)
_Report = typing.Optional[typing.Callable]  # noqa: UP045


class ClusterUnreachableError(RuntimeError):
    """The dask scheduler of the dask engine cannot be used (names the address and why)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot use the dask scheduler at {address} ({SCHEDULER_ENV}): {reason}")
        self.address = address


@contextmanager
def open_engine(
    engine: AutoMLEngine, scheduler: str = "", *, connect_timeout_s: float = 10.0
) -> Iterator[WholeFugueBackend | None]:
    """Yield `compare_models`' `parallel` argument for `engine`; close the client and cluster opened for it.

    `local` yields None: PyCaret's own sequential loop. `dask` connects to `scheduler`, or starts a
    LocalCluster of this machine's cores when it is empty (one single-threaded worker process per core:
    PyCaret's Fugue backend serializes the tasks of one process behind a lock anyway).
    """
    if engine == "local":
        yield None
        return
    with ExitStack() as opened:
        # Fugue spreads the candidate indices over the tasks with a shuffle; dask's default (p2p) logs two
        # warnings per selection and leaves a thread in each worker that delays its shutdown by seconds.
        opened.enter_context(dask.config.set({"dataframe.shuffle.method": "tasks"}))
        if scheduler:
            client = opened.enter_context(_connect(scheduler, connect_timeout_s))
        else:
            cluster = opened.enter_context(
                LocalCluster(
                    n_workers=os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    scheduler_kwargs=NO_DASHBOARD_PORT,
                )
            )
            client = opened.enter_context(Client(cluster))
        log.info(kv("automl_dask_open", scheduler=client.scheduler.address, workers=len(client.nthreads())))
        yield WholeFugueBackend(client)  # batch_size=1: one task per candidate, the best balance


class WholeFugueBackend(FugueBackend):
    """PyCaret's Fugue backend, except that a task whose candidates all failed keeps the leaderboard whole.

    Such a task returns a frame with only the `_model` column. Concatenated first (tasks arrive in a
    random order), it puts `_model` first, and PyCaret's `iloc[:, :-1]`, meant to drop `_model`,
    drops `TT (Sec)` and leaves pickled models in the leaderboard; when every task failed, sorting by
    the metric raises KeyError. Here that task returns no rows under the leaderboard's own columns,
    so failed candidates are left out, as the local loop leaves them out.
    """

    def compare_models(self, instance: Any, params: dict[str, Any]) -> Any:
        # the local loop's columns (compare_models' `master_display_columns`), then the backend's `_model`
        self._columns = ["Model", *(m.display_name for m in instance._all_metrics.values()), "TT (Sec)", "_model"]
        return super().compare_models(instance, params)

    def _remote_compare_models(self, idx: list[list[Any]], report: _Report) -> list[list[Any]]:
        results = super()._remote_compare_models(idx, report)
        return [
            row if not cloudpickle.loads(row[0]).empty else [cloudpickle.dumps(pd.DataFrame(columns=self._columns))]
            for row in results
        ]


def _connect(address: str, timeout_s: float) -> Client:
    """A client of the scheduler at `address` that has at least one worker, or the one-line error."""
    try:
        client = Client(address, timeout=timeout_s)
    except Exception as exc:  # the comm layer raises OSError, ValueError, even AssertionError for a bad address
        raise ClusterUnreachableError(address, " ".join(f"{type(exc).__name__}: {exc}".split())) from exc
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except Exception as exc:
        client.close()
        raise ClusterUnreachableError(address, f"no worker joined within {timeout_s:g} s") from exc
    return client
