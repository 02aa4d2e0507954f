"""The one process launcher: start, wait for and stop the local services (MLflow, the gunicorn router).

`make demo`, `make mlflow`, `make airflow`, the integration tests and the benchmarks all build their
commands and child environments here, so what the tests prove is what a user runs. Every wait has a
deadline and fails with the service's log tail; a taken port is refused before anything starts,
with one line naming the setting that moves it (instead of a page of server log around Errno 98).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from ticket_ab.settings import Settings, env_names, to_env

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
GUNICORN_CONF = "router/gunicorn.conf.py"  # relative to REPO, the cwd of every service: printed as typed
T = TypeVar("T")


class ServiceError(RuntimeError):
    """A service could not start or did not come up; the message says why, with its log tail."""


class PortInUseError(ServiceError):
    """The port a service needs is taken: one line naming the port and the variable that moves it."""


@dataclass(frozen=True)
class Endpoint:
    """Where a service listens, and which setting chooses its port (for the error that names it)."""

    what: str
    host: str
    port: int
    setting: str  # the settings path, e.g. "router.port"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ensure_free(self) -> None:
        """Refuse to start when the port is taken: the server's own failure would be a page of log."""
        if port_taken(self.host, self.port):
            raise PortInUseError(f"port {self.port} ({self.what}) is already in use on {self.host}; "
                                 f"set {env_names()[self.setting]} to another port")


def mlflow_endpoint(settings: Settings) -> Endpoint:
    return Endpoint("MLflow", LOOPBACK, settings.mlflow_port, "mlflow_port")


def router_endpoint(settings: Settings) -> Endpoint:
    return Endpoint("router", settings.router.host, settings.router.port, "router.port")


def airflow_endpoint(settings: Settings) -> Endpoint:
    return Endpoint("Airflow UI", LOOPBACK, settings.airflow_port, "airflow_port")


@dataclass
class Service:
    """A started process: its name for messages, the process and the log its output goes to."""

    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def tail(self, lines: int = 30) -> str:
        """The log's last lines, formatted to end an error message ('' while there is no log)."""
        if not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"; last lines of {self.log}:\n" + "\n".join(text)


def binary(name: str, install: str) -> str:
    """The path of a program the stack runs, or a one-line error saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise ServiceError(f"`{name}` is not on PATH: {install}")
    return path


def free_port() -> int:
    """A port nobody listens on now: private servers of tests and benchmarks never collide."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """Whether a server would fail to bind host:port.

    The probe sets SO_REUSEADDR as servers do, so a port a stopped service left in TIME_WAIT is free.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def wait_until(predicate: Callable[[], T], deadline_s: float, what: str, service: Service | None = None,
               interval_s: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy, and return that.

    Fails with ServiceError naming `what` at the deadline, or as soon as `service` exits (waiting
    longer could not help); either way with the service's log tail, where the reason usually is.
    """
    end = time.monotonic() + deadline_s
    while True:
        result = predicate()
        if result:
            return result
        if service is not None and service.exited():
            raise ServiceError(f"{service.name} exited with code {service.proc.returncode} before {what}"
                               f"{service.tail()}")
        if time.monotonic() >= end:
            raise ServiceError(f"gave up after {deadline_s:.0f} s waiting until {what}"
                               f"{service.tail() if service else ''}")
        time.sleep(interval_s)


def wait_http(service: Service, url: str, deadline_s: float) -> None:
    wait_until(lambda: http_ok(url), deadline_s, f"{url} answers", service)


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child process: ours, bytecode cached, MLflow's unused extras off.

    This interpreter's bin dir leads PATH: `airflow standalone` and `mlflow models serve` start
    their parts (`airflow ...`, `uvicorn`) by name, and must get this venv's.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p)
    # The MLflow server's GenAI job runner forks two extra consumers we never use.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    env.update(extra or {})
    return env


def child_env(settings: Settings, extra: dict[str, str] | None = None, *, secrets: bool = False) -> dict[str, str]:
    """python_env carrying `settings`, so the child reads exactly what its parent holds (tokens if asked).

    An inherited PROMETHEUS_MULTIPROC_DIR is dropped: a router keeps its metrics under its own home.
    """
    env = python_env(to_env(settings, secrets=secrets))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra or {})
    return env


def start(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None, *, user: str | None = None,
          cwd: Path = REPO) -> Service:
    """Start `cmd` (from the repo by default) in its own session (a terminal's Ctrl-C does not reach it),
    output to `log`; as `user` when given (PostgreSQL refuses to run as root)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env or python_env(),
                                start_new_session=True, user=user)
    return Service(name, proc, log)


def stop(target: Service | int, timeout_s: float = 15.0) -> None:
    """SIGTERM the process and all its descendants, SIGKILL whatever is left after `timeout_s`."""
    stop_all([target], timeout_s)


def stop_all(targets: list[Service | int], timeout_s: float = 15.0) -> None:
    """`stop` for several processes at once: one shared grace period, not one per process."""
    tree = []
    for target in targets:
        try:
            root = psutil.Process(target.pid if isinstance(target, Service) else target)
            tree += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(tree, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    for target in targets:
        if isinstance(target, Service):
            target.proc.poll()


def up_or_stopped(service: Service, check: Callable[[], None]) -> Service:
    """Run the wait `check`; if it fails (or is interrupted), stop the service before passing it on."""
    try:
        check()
    except BaseException:
        stop(service)
        raise
    return service


def mlflow_command(settings: Settings, backend_uri: str | None = None) -> list[str]:
    """MLflow with proxied artifacts under the settings' home, on 127.0.0.1:mlflow_port; its backend
    store is sqlite under the home unless `backend_uri` names another (the stack's PostgreSQL)."""
    directory = settings.mlflow_dir
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", backend_uri or f"sqlite:///{directory / 'mlflow.db'}",
            "--artifacts-destination", str(directory / "artifacts"),
            "--host", LOOPBACK, "--port", str(settings.mlflow_port), "--workers", "1"]


def gunicorn_command() -> list[str]:
    """The router as `make serve` runs it; its config file reads host, port and workers from the settings."""
    return [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, "router.wsgi:app"]


def start_mlflow(settings: Settings, deadline_s: float = 120.0, backend_uri: str | None = None) -> Service:
    """The local MLflow server of `settings` (see mlflow_command), returned once /health answers."""
    endpoint = mlflow_endpoint(settings)
    if settings.tracking_uri.rstrip("/") not in (endpoint.url, f"http://localhost:{endpoint.port}"):
        raise ServiceError(f"{env_names()['tracking_uri']} is {settings.tracking_uri}, but the local MLflow server "
                           f"listens on {endpoint.url}; unset {env_names()['tracking_uri']} or point it there")
    endpoint.ensure_free()
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    service = start("MLflow", mlflow_command(settings, backend_uri), settings.mlflow_dir / "server.log",
                    child_env(settings))
    return up_or_stopped(service, lambda: wait_http(service, endpoint.url + "/health", deadline_s))


def start_router(settings: Settings, log: Path, deadline_s: float = 120.0, name: str = "router") -> Service:
    """gunicorn with the repo's config, reading `settings` (tokens included), returned once /health answers."""
    endpoint = router_endpoint(settings)
    endpoint.ensure_free()
    service = start(name, gunicorn_command(), log, child_env(settings, secrets=True))
    return up_or_stopped(service, lambda: wait_http(service, endpoint.url + "/health", deadline_s))
