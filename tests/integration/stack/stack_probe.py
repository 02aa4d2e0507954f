"""What the stack tests read: Airflow's runs from its PostgreSQL, the registry, the logs, the routers,
and supervisord's process table (which pid runs each service, and whether it restarted one).

Airflow's own database is the ground truth of what the scheduler did (which runs it created, by
which trigger, which task ran how often), so the tests read it directly instead of parsing logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil

from ops.env import REPO
from ops.health import wait_until
from ops.stack import postgres, run
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

    def cli(self, *args: str, timeout: float = 600, account: str | None = None) -> subprocess.CompletedProcess:
        """`python *args` as a user runs it against the stack; `account`: acting as that registry account."""
        env = self.env if account is None else {**self.env, **self.credentials(account)}
        return subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout)

    def credentials(self, account: str) -> dict[str, str]:
        """The environment that makes MLflow's client act as one of the registry's accounts."""
        return {"MLFLOW_TRACKING_USERNAME": account,
                "MLFLOW_TRACKING_PASSWORD": self.secrets[f"registry_{account}_password"]}


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
    return wait_until(finished, deadline_s, "the scheduler runs the retrain DAG", interval_s=2)


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
        env={**handle.env, "TICKET_AB_CLIENT_TOKEN": handle.secrets["client_token"]}, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


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


def pid_of(handle: StackHandle, name: str) -> int:
    """The pid supervisord reports for a service's main process."""
    return run.manager(handle.settings).info(name)["pid"]


def listeners(port: int) -> set[int]:
    """The pids listening on 127.0.0.1:port (as root every process is visible)."""
    return {c.pid for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid}


def tree(pid: int) -> set[int]:
    try:
        return {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class Restart:
    """One SIGKILL and what supervisord made of it."""

    name: str
    killed: int
    restarted: int
    seconds: float  # from the kill until the new process passed the service's health check


def kill_and_watch_restart(handle: StackHandle, name: str, healthy: Callable[[float], bool], port: int | None,
                           deadline_s: float = 120.0) -> Restart:
    """SIGKILL the main process supervisord reports for `name` (a crash: no shutdown, no stop request),
    then wait until supervisord runs it again under a new pid, nothing of the killed process group
    is left, the new process tree alone listens on `port`, and `healthy(kill_time)` holds."""
    manager = run.manager(handle.settings)
    old = manager.info(name)["pid"]
    started, killed_at = time.monotonic(), time.time()
    os.kill(old, signal.SIGKILL)

    def back() -> int:
        info = manager.info(name)
        return info["pid"] if info["statename"] == "RUNNING" and info["pid"] not in (0, old) else 0

    wait_until(back, deadline_s, f"supervisord runs {name} again after SIGKILL of pid {old}", interval_s=0.1)
    wait_until(lambda: not group_alive(old), 30, f"nothing of {name}'s killed process group {old} is left")
    wait_until(lambda: healthy(killed_at), deadline_s, f"{name} passes its health check again", interval_s=0.2)
    seconds = time.monotonic() - started
    new = back()
    if port is not None:
        wait_until(lambda: bool(listeners(port)) and listeners(port) <= tree(new), 30,
                   f"only the restarted {name} (pid {new}) listens on port {port}")
    return Restart(name, old, new, seconds)
