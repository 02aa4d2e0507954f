"""What the stack tests read: Airflow's runs from its PostgreSQL, the registry, the logs, the routers.

Airflow's own database is the ground truth of what the scheduler did (which runs it created, by
which trigger, which task ran how often), so the tests read it directly instead of parsing logs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil

from ops import launch
from ops.stack import postgres
from ops.stack.topology import Paths, cluster
from retrain.tasks.runs import run_dir
from ticket_ab import registry
from ticket_ab.names import CHALLENGER, CHAMPION, DAG_ID
from ticket_ab.requestlog import read_requests
from ticket_ab.settings import Settings


@dataclass
class StackHandle:
    """The running stack of the module: its settings (as its processes read them) and environment."""

    settings: Settings
    env: dict[str, str]
    up_output: str

    @property
    def secrets(self) -> dict[str, str]:
        return json.loads(Paths.of(self.settings).secrets.read_text())

    @property
    def router_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.settings.router.port + i}" for i in range(self.settings.stack.replicas)]

    def cluster(self) -> postgres.Cluster:
        return cluster(self.settings, Paths.of(self.settings))

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], env=self.env, cwd=launch.REPO, capture_output=True, text=True,
                              timeout=timeout)


def query(handle: StackHandle, sql: str, *args: object) -> list[tuple]:
    conn = postgres.connect(handle.cluster(), "airflow")
    assert conn is not None, "the stack's PostgreSQL does not accept connections"
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def retrain_runs(handle: StackHandle) -> list[dict]:
    rows = query(handle, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s ORDER BY id", DAG_ID)
    return [{"run_id": r[0], "run_type": r[1], "state": r[2]} for r in rows]


def task_tries(handle: StackHandle, run_id: str) -> dict[str, tuple[str, int]]:
    """task id -> (state, try number) of one run."""
    rows = query(handle, "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s",
                 DAG_ID, run_id)
    return {task: (state, tries) for task, state, tries in rows}


def wait_for_new_run(handle: StackHandle, before: int, deadline_s: float) -> dict:
    """The first retrain run created after `before` runs existed, once it has finished."""
    def finished() -> dict | None:
        runs = retrain_runs(handle)[before:]
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None
    return launch.wait_until(finished, deadline_s, "the scheduler runs the retrain DAG", interval_s=2)


def run_outcome(handle: StackHandle, run_id: str) -> str:
    """What a run's relabel and train tasks decided (their saved results), for failure messages."""
    directory = run_dir(handle.settings, run_id)
    return "\n".join(f"{name}: {(directory / name).read_text()[:1500]}" for name in ("relabel.json", "train.json")
                     if (directory / name).exists())


def aliases(handle: StackHandle) -> dict[str, str]:
    model = registry.connect(handle.settings.tracking_uri).get_registered_model(handle.settings.model_name)
    return dict(model.aliases)


def versions(handle: StackHandle) -> int:
    client = registry.connect(handle.settings.tracking_uri)
    return len(client.search_model_versions(f"name = '{handle.settings.model_name}'"))


def ready(url: str) -> dict:
    with urllib.request.urlopen(url + "/ready", timeout=5) as resp:
        return json.load(resp)


def served_versions(url: str) -> dict[str, str | None]:
    body = ready(url)
    return {alias: (body.get(alias) or {}).get("version") for alias in (CHAMPION, CHALLENGER)}


def traffic(handle: StackHandle, url: str, scenario: str, n: int, seed: int, out: Path, feedback_rate: float = 0.3,
            max_error_rate: float = 0.01) -> subprocess.Popen:
    """testing.py against one replica, in the background; its summary goes to `out`."""
    return subprocess.Popen(
        [sys.executable, "load_test/testing.py", "--url", url, "--n", str(n), "--seed", str(seed), "--scenario",
         scenario, "--feedback-rate", str(feedback_rate), "--feedback-token", handle.secrets["feedback_token"],
         "--no-progress", "--max-seconds", "180", "--max-error-rate", str(max_error_rate), "--json-out", str(out)],
        env=handle.env, cwd=launch.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def finished_traffic(procs: list[subprocess.Popen], outs: list[Path], timeout_s: float = 240) -> list[dict]:
    for proc in procs:
        proc.wait(timeout=timeout_s)
    return [json.loads(out.read_text()) for out in outs]


def logged_requests(handle: StackHandle, since) -> int:
    return len(read_requests(handle.settings.logs_dir, since=since).rows)


def kill_tree(pid: int) -> None:
    """SIGKILL a service and everything it started: a crash, not a shutdown."""
    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    for proc in tree:
        proc.kill()
    psutil.wait_procs(tree, timeout=10)


def now_utc() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")
