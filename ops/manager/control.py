"""One supervisord per home: started from its rendered config, then driven over its unix socket (XML-RPC).

supervisord starts, supervises, restarts and stops the programs; this module asks it to, and reads
its process table (state, pid, exit status) for the health waits, `status` and error messages. A
second supervisord on the same directory is refused with one line: a lock held while one starts,
then the socket that answers while one runs (supervisord's own refusal is translated, too).
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import psutil
from supervisor.xmlrpc import Faults, SupervisorTransport

from ops.env import REPO
from ops.health import ServiceError, log_tail, wait_until
from ops.manager import program as conf
from ops.manager.program import Program

GONE = ("STOPPED", "EXITED", "FATAL")  # states in which nothing of the program runs


class Manager:
    """The supervisord whose config, socket, pid file and log live in `directory`.

    `label` names it in messages ("the stack of /srv/home"), `stop_hint` is the command that stops it.
    """

    def __init__(self, directory: Path, label: str, stop_hint: str) -> None:
        self.directory, self.label, self.stop_hint = directory, label, stop_hint
        self.socket = directory / conf.SOCKET

    @property
    def config(self) -> Path:
        return self.directory / conf.CONF

    def rpc(self) -> xmlrpc.client.ServerProxy:
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def answering(self) -> bool:
        try:
            return self.rpc().supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Hold this directory while starting: a second start fails at once instead of racing the first."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.directory / "start.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ServiceError(f"{self.label} is being started by another command; wait for it, or "
                                   f"{self.stop_hint}") from None
            self.refuse_if_running()
            yield

    def refuse_if_running(self) -> None:
        """One line when this supervisord already runs, naming its pids (checked before ports: its own would
        be taken)."""
        if self.answering():
            raise ServiceError(f"{self.label} is already running ({self.pids()}); {self.stop_hint} first")

    def pids(self) -> str:
        """`supervisord pid N; name pid N, ...` of what runs now (one-shots that finished left out)."""
        try:
            running = [f"{name} pid {info['pid']}" for name, info in self.processes().items() if info["pid"]]
            return f"supervisord pid {self.rpc().supervisor.getPID()}; " + ", ".join(running)
        except (OSError, xmlrpc.client.Error):
            return "its pids unknown"

    def launch(self, programs: list[Program], env: dict[str, str]) -> None:
        """Write the config and start supervisord with `env` (no secret: each program gets its own)."""
        conf.write(conf.render(programs, self.directory), self.directory)
        result = subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(self.config)], env=env,
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            if "already listening" in result.stderr:
                raise ServiceError(f"{self.label} is already running; {self.stop_hint} first")
            raise ServiceError(f"supervisord -c {self.config} failed: {result.stderr.strip()[-500:]}")
        wait_until(self.answering, 30, f"supervisord answers on {self.socket}")

    def processes(self) -> dict[str, dict]:
        """Program name -> supervisord's process info (statename, pid, exitstatus, description, ...)."""
        return {info["name"]: info for info in self.rpc().supervisor.getAllProcessInfo()
                if info["name"] != conf.REAPER}

    def info(self, name: str) -> dict:
        return self.rpc().supervisor.getProcessInfo(name)

    def start(self, name: str) -> None:
        """Ask supervisord to start `name` (not waiting: the caller waits for its health check)."""
        try:
            self.rpc().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.ALREADY_STARTED:
                raise ServiceError(f"supervisord could not start {name}: {fault.faultString}"
                                   f"{log_tail(self._log(name))}") from None

    def failure(self, names: list[str]) -> str | None:
        """Why one of `names` will not come up (FATAL, a failed one-shot, stopped), or None while all may."""
        for name in names:
            info = self.info(name)
            state = info["statename"]
            failed = state == "FATAL" or state == "STOPPED" or (state == "EXITED" and info["exitstatus"] != 0)
            if failed:
                why = info["spawnerr"] or f"exit status {info['exitstatus']}"
                return f"{name} is {state} ({why}){log_tail(Path(info['stdout_logfile']))}"
        return None

    def stop(self, names: list[str], deadline_s: float = 90.0) -> list[str]:
        """Stop `names` at once (supervisord signals, waits stopwaitsecs, then SIGKILLs); returns 'name (pid N)'."""
        stopped = []
        for name in names:
            info = self.info(name)
            if info["statename"] in GONE:
                continue
            with contextlib.suppress(xmlrpc.client.Fault):  # it may have stopped in between
                self.rpc().supervisor.stopProcess(name, False)
            stopped.append(f"{name} (pid {info['pid']})" if info["pid"] else name)
        wait_until(lambda: all(self.info(name)["statename"] in GONE for name in names), deadline_s,
                   f"supervisord has stopped {', '.join(names)}")
        return stopped

    def shutdown(self, deadline_s: float = 90.0) -> None:
        """Stop whatever still runs and end supervisord itself; returns once its process is gone.

        supervisord's shutdown visits one process group per turn of its main loop, and an idle turn
        waits up to a second: the groups already stopped are removed first (12 groups: 11 s -> 1 s).
        """
        rpc = self.rpc().supervisor
        for info in rpc.getAllProcessInfo():
            if info["statename"] in GONE:
                with contextlib.suppress(xmlrpc.client.Fault):  # started again in between: shutdown stops it
                    rpc.removeProcessGroup(info["group"])
        pid = rpc.getPID()
        rpc.shutdown()
        wait_until(lambda: _exited(pid), deadline_s, f"supervisord (pid {pid}) has exited")

    def _log(self, name: str) -> Path:
        return Path(self.info(name)["stdout_logfile"])


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
