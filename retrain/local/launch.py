"""Start and wait for the local services (MLflow server, gunicorn router) as real processes.

`make demo`, the integration tests and the benchmarks all start the same commands through
these helpers, so what the tests prove is what a user runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class ServiceError(RuntimeError):
    """A service did not come up; the message includes the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def wait_http(url: str, proc: subprocess.Popen | None, deadline_s: float, log_path: Path | None = None) -> None:
    """Poll `url` until it answers 2xx; fail fast if the process dies, with its log tail."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if http_ok(url):
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode} before {url} was up{_tail(log_path)}")
        time.sleep(0.2)
    raise ServiceError(f"{url} not up after {deadline_s:.0f} s{_tail(log_path)}")


def _tail(log_path: Path | None, lines: int = 30) -> str:
    if log_path is None or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_path}:\n" + "\n".join(text)


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for our child processes: bytecode cached, MLflow quiet (the project is installed)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # The MLflow server's GenAI job runner forks two extra consumers we never use.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    env.update(extra or {})
    return env


def start(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `cmd` in its own process group with stdout+stderr to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env or python_env(),
                                start_new_session=True)


def stop(proc: subprocess.Popen | int, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout_s`."""
    pid = proc if isinstance(proc, int) else proc.pid
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if isinstance(proc, subprocess.Popen):
            if proc.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def mlflow_command(mlflow_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """MLflow on sqlite with proxied artifacts under `mlflow_dir` (the embedded default)."""
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            "--artifacts-destination", str(mlflow_dir / "artifacts"),
            "--host", host, "--port", str(port), "--workers", "1"]


def start_mlflow(mlflow_dir: Path, port: int, deadline_s: float = 90.0) -> subprocess.Popen:
    """Start the MLflow server and return once /health answers."""
    log_path = mlflow_dir / "server.log"
    proc = start(mlflow_command(mlflow_dir, port), log_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, deadline_s, log_path)
    except ServiceError:
        stop(proc)
        raise
    return proc
