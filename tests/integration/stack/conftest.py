"""One native production stack for the module: `python -m ops stack up` as a user runs it.

The stack gets its own home (readable by the `postgres` user, which runs the cluster when we are
root), free ports, and settings that make the loop fast enough for CI: the log watcher looks every
30 s (each look is a task process; at 10 s the idle stack kept 0.65 of the 2 cores busy), rows settle
for 1 s, routers poll the registry every second, and Airflow declares a killed task's process dead
after 30 s instead of 5 minutes. Airflow's log servers (which bind every
interface) get free ports too, so the module's stack cannot collide with another on the machine.
Teardown is `stack down`, then a check that no process of this home is left (supervisord included).
The registry needs an account for everything: the tests read it as the routers' read-only `router`
account, and act as another account only where a test says so.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ops.env import python_env
from ops.ports import LOOPBACK, free_port, port_taken
from tests.integration.stack.stack_probe import StackHandle
from ticket_ab.settings import get_settings

UP_DEADLINE_S = 420


def _two_free_ports() -> int:
    """A free port whose successor is free too: the two router replicas."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and not port_taken(LOOPBACK, port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


def _leftovers(home: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(home) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline[:120]}")
    return found


@contextlib.contextmanager
def running_stack(extra_env: dict[str, str] | None = None) -> Iterator[StackHandle]:
    """`stack up` in a fresh home with free ports (and `extra_env`), then `stack down` and the leftovers check."""
    base = Path(tempfile.mkdtemp(prefix="ticket-ab-stack-"))
    base.chmod(0o755)  # the cluster runs as `postgres` when we are root: it must reach its directory
    home = base / "home"
    env = {**python_env(), **{
        "TICKET_AB_HOME": str(home), "TICKET_AB_POSTGRES_PORT": str(free_port()),
        "TICKET_AB_MLFLOW_PORT": str(free_port()), "TICKET_AB_AIRFLOW_PORT": str(free_port()),
        "TICKET_AB_PROMETHEUS_PORT": str(free_port()), "TICKET_AB_PORT": str(_two_free_ports()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "TICKET_AB_WATCH_INTERVAL_S": "30", "TICKET_AB_LOG_SETTLE_S": "1", "TICKET_AB_RELOAD_S": "1",
        "TICKET_AB_MIN_WINDOW": "200", "TICKET_AB_AUTOML_MODELS": "lr,nb", "TICKET_AB_AUTOML_BUDGET_S": "60",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
        # The scheduler also runs the experiment DAG (every TICKET_AB_ROLLOUT_CHECK_MINUTES and on every request-log
        # asset), which would ramp, stop or promote the challenger these tests register, check and promote
        # themselves. With every action off it only looks and reports ("would ..."), so the stack still runs it as
        # deployed, with its credentials, and changes nothing: declared here, before anything starts, so there is
        # no race with a run the scheduler creates first (pausing the DAG by SQL after `up` would have one).
        **dict.fromkeys(("TICKET_AB_ROLLOUT_RAMP", "TICKET_AB_ROLLOUT_PROMOTE", "TICKET_AB_ROLLOUT_STOP",
                         "TICKET_AB_ROLLOUT_ROLLBACK"), "off"),
        **(extra_env or {}),
    }}
    env.pop("MLFLOW_TRACKING_URI", None)
    patch = pytest.MonkeyPatch()
    for name, value in env.items():
        if name.startswith(("TICKET_AB_", "AIRFLOW__")):
            patch.setenv(name, value)
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    handle = StackHandle(get_settings(), env, "")
    try:
        up = handle.cli("-m", "ops", "stack", "up", "--bootstrap-n", "1500", timeout=UP_DEADLINE_S)
        handle.up_output = up.stdout + up.stderr
        assert up.returncode == 0, handle.up_output[-3000:]
        for name, value in handle.credentials("router").items():  # the tests read the registry as the routers do
            patch.setenv(name, value)
        yield handle
    finally:
        down = handle.cli("-m", "ops", "stack", "down", timeout=180)
        patch.undo()
        left = _leftovers(home)
        shutil.rmtree(base, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not left, f"processes left after `stack down`: {left}"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackHandle]:
    with running_stack() as handle:
        yield handle
