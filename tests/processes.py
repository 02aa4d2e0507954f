"""Real servers for tests (MLflow, gunicorn routers), started and stopped by mirakuru.

mirakuru's HTTPExecutor refuses a port something already answers on, starts the command in its own
process group, waits (with a deadline) until the health URL answers, and stops the whole group.
The command and environment are ops.servers', as `make demo` and `make stack` run them; output goes
to a log file (a pipe nobody reads would fill up and block the server).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from mirakuru import HTTPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

from ops.env import REPO
from ops.health import ServiceError, log_tail
from ops.servers import Server


@dataclass
class Running:
    """A server mirakuru started: its executor, and the log its output goes to."""

    name: str
    executor: HTTPExecutor
    log: Path

    @property
    def pid(self) -> int:
        assert self.executor.process is not None, f"{self.name} is not running"
        return self.executor.process.pid

    def running(self) -> bool:
        return self.executor.running()

    def failed(self) -> str | None:
        """Why waiting for this server cannot succeed any more (it exited), or None while it runs."""
        return None if self.running() else f"{self.name} is not running{log_tail(self.log)}"

    def stop(self) -> None:
        """SIGTERM the server's process group (SIGKILL after the executor's timeout); twice is harmless."""
        self.executor.stop()


def start(server: Server, log: Path, deadline_s: float = 120.0, cwd: Path = REPO) -> Running:
    """Start `server` and return once its health URL answers; fails with its log tail otherwise."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:  # the server writes to its own copy of the descriptor
        executor = HTTPExecutor(server.command, url=server.health_url, method="GET", timeout=deadline_s,
                                envvars=server.env, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT)
        try:
            executor.start()
        except (AlreadyRunning, ProcessExitedWithError, TimeoutExpired) as exc:
            raise ServiceError(f"{server.name} did not come up: {exc}{log_tail(log)}") from None
    return Running(server.name, executor, log)
