"""The label store across processes: two overlapping DAG runs lose no row, and a run killed while it holds
the store blocks nobody (real processes, so not in the unit tier)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from ops import env as services
from ops.health import wait_until
from retrain.adapters import labelstore

# One DAG run's write: read the store, think for a while (a relabel takes seconds), add its own rows.
RUN = """
import sys, time
from pathlib import Path
import pandas as pd
from retrain.adapters import labelstore
path, tag, rows, hold = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
labels = pd.DataFrame({"request_id": [f"{tag}-{i}" for i in range(rows)],
                       "text": [f"ticket {tag} {i}" for i in range(rows)], "topic": "network",
                       "timestamp": "2026-12-04T10:00:00+00:00"})
def add(store):
    Path(str(path) + f".{tag}.inside").touch()
    time.sleep(hold)
    return labelstore.upsert(store, labelstore.rows_from(labels, labelstore.GOLD))
labelstore.update(path, add)
"""


def _run(path: Path, tag: str, rows: int, hold_s: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, str(path), tag, str(rows), str(hold_s)],
                            env=services.python_env(), stderr=subprocess.PIPE, text=True)


def test_two_overlapping_runs_on_one_label_store_lose_no_row(tmp_path):
    path = labelstore.path_for(tmp_path)
    runs = [_run(path, tag, 50, 1.0) for tag in ("scheduled", "retry")]
    for run in runs:
        assert run.wait(timeout=120) == 0, run.stderr.read()
    store = labelstore.load(path)
    assert len(store) == 100
    assert {key.split("-")[0] for key in store[labelstore.KEY]} == {"scheduled", "retry"}
    assert not list(path.parent.glob(f".{path.name}.*.tmp")), "temporary files left behind"


def test_a_run_killed_while_it_holds_the_store_blocks_no_later_run(tmp_path):
    path = labelstore.path_for(tmp_path)
    killed = _run(path, "killed", 10, 60.0)
    wait_until(lambda: Path(str(path) + ".killed.inside").exists(), 60, "the first run holds the store")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    started = time.monotonic()
    later = _run(path, "later", 10, 0.0)
    assert later.wait(timeout=60) == 0, later.stderr.read()
    assert time.monotonic() - started < 30
    assert set(labelstore.load(path)[labelstore.KEY]) == {f"later-{i}" for i in range(10)}
