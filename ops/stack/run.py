"""`make stack` / `make stack-down` / `make stack-status`: the production topology, natively.

Start order follows compose's `depends_on`: PostgreSQL; then, side by side, `airflow db migrate` and
MLflow followed by the one-shot bootstrap; then the Airflow services once the migration is done, and
the router replicas and Prometheus once a champion exists. `up` returns when every service answers
its health check and prints every URL and log; each started process is recorded (pid and start
time), and `down` stops exactly those, routers first and PostgreSQL last.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable

import psutil

from ops import launch, pidfiles
from ops.stack import postgres, prometheus
from ops.stack.topology import (
    AIRFLOW_SERVICES,
    CELERY,
    Paths,
    airflow_command,
    airflow_env,
    bootstrap_command,
    cluster,
    describe,
    load_secrets,
    replica_name,
    replica_settings,
)
from ticket_ab.settings import Settings

# Stopped in these phases by `down`, each phase at once: clients before the servers they use.
STOP_PHASES = (("router", "prometheus"), ("airflow",), ("mlflow", "redis"), ("postgres",))
AIRFLOW_COMPONENTS = ("scheduler", "dag_processor", "triggerer")
ONE_SHOT = ("airflow-init", "bootstrap")
Say = Callable[[str], None]


class Stack:
    """One `up`: the services started so far, so a failure stops them all (nothing is left half up)."""

    def __init__(self, settings: Settings, say: Say, bootstrap_n: int) -> None:
        self.settings, self.say, self.bootstrap_n = settings, say, bootstrap_n
        self.paths = Paths.of(settings)
        self.keys = load_secrets(settings, self.paths)
        self.pg = cluster(settings, self.paths)
        self.started: list[launch.Service] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], **kwargs) -> launch.Service:
        service = launch.start(name, cmd, self.paths.log(name), env, **kwargs)
        self.started.append(service)
        pidfiles.record(self.paths.pids, name, service.pid)
        return service

    def finish(self, name: str, service: launch.Service, deadline_s: float) -> None:
        """Wait for a one-shot service to exit 0."""
        launch.wait_until(lambda: service.exited(), deadline_s, f"{name} finishes")
        (self.paths.pids / f"{name}.pid").unlink(missing_ok=True)
        if service.proc.returncode != 0:
            raise launch.ServiceError(f"{name} failed with exit code {service.proc.returncode}{service.tail()}")

    def postgres(self) -> None:
        if postgres.initdb(self.pg):
            self.say(f"initialised PostgreSQL in {self.pg.data}")
        launch.Endpoint("PostgreSQL", launch.LOOPBACK, self.pg.port, "stack.postgres_port").ensure_free()
        server = self.start("postgres", postgres.command(self.pg), launch.python_env(), user=postgres.run_as(),
                            cwd=self.pg.directory)
        launch.wait_until(lambda: postgres.accepts_connections(self.pg), 60, "PostgreSQL accepts connections", server)
        created = postgres.ensure_databases(self.pg)
        self.say(f"postgres up on port {self.pg.port}" + (f"; created {', '.join(created)}" if created else ""))

    def mlflow(self) -> launch.Service:
        endpoint = launch.mlflow_endpoint(self.settings)
        endpoint.ensure_free()
        self.settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        return self.start("mlflow", launch.mlflow_command(self.settings, self.pg.url("mlflow")),
                          launch.child_env(self.settings))

    def airflow(self) -> None:
        env = airflow_env(self.settings, self.pg, self.keys)
        launch.airflow_endpoint(self.settings).ensure_free()
        names = [*AIRFLOW_SERVICES, *(["airflow-worker"] if self.settings.stack.executor == CELERY else [])]
        for name in names:
            self.start(name, airflow_command(name), env, cwd=self.settings.airflow_dir)

    def routers(self) -> list[tuple[launch.Service, Settings]]:
        started = []
        for i, replica in enumerate(replica_settings(self.settings, self.keys)):
            launch.router_endpoint(replica).ensure_free()
            started.append((self.start(replica_name(i), launch.gunicorn_command(),
                                       launch.child_env(replica, secrets=True)), replica))
        return started

    def prometheus(self) -> launch.Service:
        port = self.settings.stack.prometheus_port
        launch.Endpoint("Prometheus", launch.LOOPBACK, port, "stack.prometheus_port").ensure_free()
        replicas = replica_settings(self.settings, self.keys)
        config = prometheus.render([f"{launch.LOOPBACK}:{r.router.port}" for r in replicas],
                                   self.paths.root / "prometheus")
        return self.start("prometheus", prometheus.command(config, port), launch.python_env())

    def alive(self) -> bool:
        """True while every long-running service runs; a crashed one fails `up` at once, with its log tail."""
        for service in self.started:
            if service.exited() and service.name not in ONE_SHOT:
                raise launch.ServiceError(f"{service.name} exited with code {service.proc.returncode}"
                                          f"{service.tail()}")
        return True

    def stop_all(self) -> None:
        for service in reversed(self.started):
            stop_service(service.name, service.pid)


def stop_service(name: str, pid: int) -> None:
    """PostgreSQL gets a fast shutdown (SIGINT to the postmaster); everything else its process tree stopped."""
    if name != "postgres":
        launch.stop(pid)
        return
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        launch.stop(pid)


def airflow_healthy(settings: Settings) -> bool:
    """The API server's health endpoint reports the scheduler, DAG processor and triggerer heartbeats."""
    url = f"{launch.airflow_endpoint(settings).url}/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            health = json.load(resp)
    except (OSError, ValueError):
        return False
    return all((health.get(part) or {}).get("status") == "healthy" for part in ("metadatabase", *AIRFLOW_COMPONENTS))


def up(settings: Settings, say: Say = print, bootstrap_n: int = 2000, deadline_s: float = 300.0) -> dict:
    """Start the whole stack and return `describe()`; on any failure stop what was started and re-raise."""
    if running(settings):
        raise launch.ServiceError(f"a stack of {settings.home} is already running; `make stack-down` first")
    stack = Stack(settings, say, bootstrap_n)
    started = time.monotonic()
    try:
        _up(stack, deadline_s)
    except BaseException:
        say("start-up failed: stopping what was started")
        stack.stop_all()
        raise
    say(f"stack up in {time.monotonic() - started:.0f} s")
    return describe(settings, stack.paths)


def _up(stack: Stack, deadline_s: float) -> None:
    settings, say = stack.settings, stack.say
    stack.postgres()
    if settings.stack.executor == CELERY:
        stack.start("redis", prometheus.redis_command(stack.paths.root / "redis", settings.stack.redis_port),
                    launch.python_env())
    env = airflow_env(settings, stack.pg, stack.keys)
    settings.airflow_dir.mkdir(parents=True, exist_ok=True)
    migrate = stack.start("airflow-init", airflow_command("airflow-init"), env, cwd=settings.airflow_dir)
    mlflow = stack.mlflow()
    launch.wait_http(mlflow, settings.tracking_uri + "/health", deadline_s)
    say(f"mlflow up on {settings.tracking_uri} (backend: PostgreSQL database mlflow)")
    bootstrap = stack.start("bootstrap", bootstrap_command(stack.bootstrap_n), launch.child_env(settings))
    stack.finish("airflow-init", migrate, deadline_s)
    say("airflow db migrate done")
    stack.airflow()
    stack.finish("bootstrap", bootstrap, deadline_s)
    say("bootstrap done: a champion is registered")
    for router, replica in stack.routers():
        launch.wait_http(router, launch.router_endpoint(replica).url + "/ready", deadline_s)
    say(f"{settings.stack.replicas} router replicas ready")
    prom = stack.prometheus()
    launch.wait_http(prom, f"http://{launch.LOOPBACK}:{settings.stack.prometheus_port}/-/ready", deadline_s)
    launch.wait_until(lambda: stack.alive() and airflow_healthy(settings), deadline_s,
                      "Airflow's scheduler, DAG processor and triggerer report healthy")
    say("airflow healthy: scheduler, dag-processor, triggerer")


def restart(settings: Settings, name: str, deadline_s: float = 120.0) -> launch.Service:
    """Start one long-running service of a running stack again (after a crash), as `up` started it."""
    stack = Stack(settings, print, bootstrap_n=0)
    pid = running(settings).get(name)
    if pid is not None:
        stop_service(name, pid)
    if name.startswith("airflow-"):
        return stack.start(name, airflow_command(name), airflow_env(settings, stack.pg, stack.keys),
                           cwd=settings.airflow_dir)
    replicas = {replica_name(i): replica for i, replica in enumerate(replica_settings(settings, stack.keys))}
    if name not in replicas:
        raise launch.ServiceError(f"cannot restart {name!r}: only Airflow services and router replicas "
                                  f"({', '.join(replicas)}) restart alone; restart the stack for the rest")
    service = stack.start(name, launch.gunicorn_command(), launch.child_env(replicas[name], secrets=True))
    return launch.up_or_stopped(service, lambda: launch.wait_http(
        service, launch.router_endpoint(replicas[name]).url + "/ready", deadline_s))


def running(settings: Settings) -> dict[str, int]:
    """Recorded services whose very process still runs: name -> pid."""
    pids = Paths.of(settings).pids
    found = {path.stem: pidfiles.running(path) for path in sorted(pids.glob("*.pid"))} if pids.is_dir() else {}
    return {name: pid for name, pid in found.items() if pid is not None}


def down(settings: Settings, say: Say = print) -> list[str]:
    """Stop every recorded service of this home, phase by phase; returns what was stopped."""
    alive = running(settings)
    stopped = []
    for phase in STOP_PHASES:
        names = [name for name in alive if name.startswith(phase)]
        if not names:
            continue
        started = time.monotonic()
        if phase == ("postgres",):
            for name in names:
                stop_service(name, alive[name])
        else:
            launch.stop_all([alive[name] for name in names], timeout_s=10)
        say(f"stopped {', '.join(names)} in {time.monotonic() - started:.1f} s")
        stopped += [f"{name} (pid {alive[name]})" for name in names]
    for path in Paths.of(settings).pids.glob("*.pid"):
        path.unlink(missing_ok=True)
    return stopped
