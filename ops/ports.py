"""Ports of the local services: which setting chooses each, and the one-line error when one is taken.

A taken port is refused before anything starts, with one line naming the setting that moves it:
the server's own failure would be a page of log around Errno 98, and under supervisord a few
restarts before it gives up.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from ops.health import ServiceError
from ticket_ab.settings import Settings, env_names

LOOPBACK = "127.0.0.1"


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
        """Refuse to start when the port is taken."""
        if port_taken(self.host, self.port):
            raise PortInUseError(f"port {self.port} ({self.what}) is already in use on {self.host}; "
                                 f"set {env_names()[self.setting]} to another port")


def mlflow_endpoint(settings: Settings) -> Endpoint:
    return Endpoint("MLflow", LOOPBACK, settings.mlflow_port, "mlflow_port")


def router_endpoint(settings: Settings) -> Endpoint:
    return Endpoint("router", settings.router.host, settings.router.port, "router.port")


def airflow_endpoint(settings: Settings) -> Endpoint:
    return Endpoint("Airflow UI", LOOPBACK, settings.airflow_port, "airflow_port")


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
