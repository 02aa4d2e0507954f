"""`make mlflow` and `make demo` in the background: MLflow and the router under a supervisord of their own.

It lives in `$TICKET_AB_HOME/run/` (0700: config, socket, pid file, log), apart from the stack's,
so a demo and a stack of different homes never touch each other. supervisord restarts either server
if it crashes; `make stop` stops both and then supervisord. The router's tokens and customer key go
in its program's environment (the config is mode 0600), not on any command line.
"""

from __future__ import annotations

import shlex

from ops import servers
from ops.env import REPO, inherited, own_part
from ops.health import http_ok, wait_until
from ops.manager.control import GONE, Manager
from ops.manager.program import Program
from ops.ports import mlflow_endpoint, router_endpoint
from ticket_ab.settings import Settings

MLFLOW, ROUTER = "mlflow", "router"


def manager(settings: Settings) -> Manager:
    return Manager(settings.home / "run", f"the demo supervisord of {settings.home}", "`make stop`")


def describe(settings: Settings, names: tuple[str, ...]) -> list[Program]:
    """MLflow (sqlite and artifacts under the home) and, if named, the router; as supervisord runs them."""
    base = inherited(settings)
    found = {MLFLOW: servers.mlflow(settings), ROUTER: servers.router(settings)}
    logs = {MLFLOW: settings.mlflow_dir / "server.log", ROUTER: settings.logs_dir / "router.log"}
    return [Program(name, found[name].command, REPO, logs[name], own_part(found[name].env, base),
                    stopwaitsecs=15) for name in names]


def shown(program: Program) -> str:
    """The command a user would type (with the environment it adds, secrets hidden)."""
    visible = {name: value for name, value in program.environment.items() if name == "MLFLOW_BACKEND_STORE_URI"}
    prefix = "".join(f"{name}={value} " for name, value in visible.items())
    command = program.command[2:] if program.command[1] == "-m" else program.command  # `python -m mlflow` -> mlflow
    return prefix + shlex.join(command)


def start(settings: Settings, names: tuple[str, ...]) -> None:
    """Start supervisord with `names` described, and MLflow in it once its port is known to be free."""
    running = manager(settings)
    running.refuse_if_running()
    servers.check_tracking_uri(settings)
    mlflow_endpoint(settings).ensure_free()
    if ROUTER in names:
        router_endpoint(settings).ensure_free()
    with running.claim():
        programs = describe(settings, names)
        for program in programs:  # supervisord refuses a log whose directory does not exist
            program.log.parent.mkdir(parents=True, exist_ok=True)
        running.launch(programs, inherited(settings))
        print(f"$ supervisorctl -c {running.config} start {MLFLOW}    # {shown(programs[0])}", flush=True)
        running.start(MLFLOW)
        wait(running, MLFLOW, servers.mlflow(settings).health_url)


def start_router(settings: Settings) -> None:
    """Start the router program of the running demo supervisord and wait until it answers /health."""
    running = manager(settings)
    program = describe(settings, (ROUTER,))[0]
    print(f"$ supervisorctl -c {running.config} start {ROUTER}    # {shown(program)}", flush=True)
    running.start(ROUTER)
    wait(running, ROUTER, servers.router(settings).health_url)


def wait(running: Manager, name: str, url: str, deadline_s: float = 120.0) -> None:
    wait_until(lambda: http_ok(url), deadline_s, f"{name} answers {url}", failed=lambda: running.failure([name]))


def stop(settings: Settings) -> list[str]:
    """Stop what the demo supervisord of this home runs, then supervisord; returns 'name (pid N)' of each."""
    running = manager(settings)
    if not running.answering():
        return []
    alive = [name for name, info in running.processes().items() if info["statename"] not in GONE]
    stopped = running.stop(alive) if alive else []
    running.shutdown()
    return stopped
