"""`make stack` / `make stack-down` / `make stack-status` / `stack restart SERVICE`, under supervisord.

`up` writes the secret files (ops.stack.secret_files), renders the programs (ops.stack.programs) into
`$TICKET_AB_HOME/stack/supervisor/`, starts that supervisord, and asks it to start the programs in
compose's `depends_on` order: PostgreSQL; then, side by side, `airflow db migrate` and MLflow (with
its auth app) followed by the one-shot `registry-init` (the accounts) and the one-shot bootstrap;
then the Airflow services once the migration is done, and the router replicas and Prometheus once a
champion exists.
Each waits for what it needs to pass its health check (ops.stack.checks); `up` returns when all do.
From then on supervisord restarts a crashed service by itself. `down` stops the programs phase by
phase, clients before the servers they use, and then supervisord.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ops.env import inherited
from ops.health import ServiceError, wait_until
from ops.manager.control import GONE, Manager
from ops.ports import LOOPBACK, Endpoint, airflow_endpoint, mlflow_endpoint, router_endpoint
from ops.stack import checks, configdb, postgres, programs, prometheus, secret_files
from ops.stack.accounts import ACCOUNTS
from ops.stack.topology import (
    CELERY,
    Paths,
    Secrets,
    airflow_services,
    cluster,
    describe,
    load_secrets,
    replica_name,
    replica_settings,
)
from ticket_ab.settings import Settings

# Stopped in these phases by `down`, each phase at once: clients before the servers they use.
STOP_PHASES = (("router", "prometheus"), ("airflow",), ("mlflow", "redis"), ("postgres",))
Say = Callable[[str], None]


def manager(settings: Settings) -> Manager:
    return Manager(Paths.of(settings).supervisor, f"the stack of {settings.home}", "`make stack-down`")


class Stack:
    """One `up`: the programs asked to start so far, so a wait fails at once when one of them cannot run."""

    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings, self.say = settings, say
        self.paths = Paths.of(settings)
        self.keys = load_secrets(settings, self.paths)
        self.pg = cluster(settings, self.paths)
        self.manager = manager(settings)
        self.checks = checks.checks(settings, self.pg, self.keys)
        self.started: list[str] = []

    def start(self, *names: str) -> None:
        for name in names:
            self.manager.start(name)
            self.started.append(name)

    def wait(self, check: Callable[[], object], what: str, deadline_s: float) -> None:
        wait_until(check, deadline_s, what, failed=lambda: self.manager.failure(self.started), interval_s=0.5)

    def healthy(self, name: str, deadline_s: float) -> None:
        self.wait(self.checks[name], f"{name} passes its health check", deadline_s)

    def finished(self, name: str, deadline_s: float) -> None:
        """A one-shot has exited 0 (a non-zero exit fails the wait at once, with its log)."""
        self.wait(lambda: self.manager.info(name)["statename"] == "EXITED", f"{name} finishes", deadline_s)

    def launch(self, bootstrap_n: int) -> None:
        """Prepare what the programs need (the cluster, the Prometheus config), then start supervisord."""
        if postgres.initdb(self.pg):
            self.say(f"initialised PostgreSQL in {self.pg.data}")
        for directory in (self.settings.mlflow_dir, self.settings.airflow_dir, self.paths.logs,
                          self.paths.root / "redis"):
            directory.mkdir(parents=True, exist_ok=True)
        self.settings.mlflow_dir.chmod(0o700)  # the artifact store: served by MLflow only, written by no other user
        secret_files.write_files(self.paths.registry_auth, self.paths.airflow_passwords,
                                 secret_files.database_uri(postgres.USER, self.pg.password(),
                                                           f"{LOOPBACK}:{self.pg.port}"),
                                 self.keys.airflow_admin_password)
        config = prometheus.render(programs.prometheus_targets(self.settings, self.keys),
                                   self.paths.root / "prometheus")
        described = programs.programs(self.settings, self.paths, self.keys, self.pg, config, bootstrap_n)
        self.manager.launch(described, inherited(self.settings))
        self.say(f"supervisord up: `supervisorctl -c {self.manager.config} status` shows what it runs")


def ensure_ports_free(settings: Settings, keys: Secrets) -> None:
    """Every port of the stack is free, or one line naming the first taken one and its variable."""
    stack = settings.stack
    endpoints = [Endpoint("PostgreSQL", LOOPBACK, stack.postgres_port, "stack.postgres_port"),
                 mlflow_endpoint(settings), airflow_endpoint(settings),
                 *(router_endpoint(replica) for replica in replica_settings(settings, keys)),
                 Endpoint("Prometheus", LOOPBACK, stack.prometheus_port, "stack.prometheus_port"),
                 *([Endpoint("Redis", LOOPBACK, stack.redis_port, "stack.redis_port")]
                   if stack.executor == CELERY else [])]
    for endpoint in endpoints:
        endpoint.ensure_free()


def up(settings: Settings, say: Say = print, bootstrap_n: int = 2000, deadline_s: float = 300.0) -> dict:
    """Start the whole stack and return `describe()`; on any failure stop what was started and re-raise."""
    stack = Stack(settings, say)
    stack.manager.refuse_if_running()
    with stack.manager.claim():
        ensure_ports_free(settings, stack.keys)
        started = time.monotonic()
        stack.launch(bootstrap_n)
        try:
            _up(stack, deadline_s)
        except BaseException:
            say("start-up failed: stopping what was started")
            down(settings, say)
            raise
    say(f"stack up in {time.monotonic() - started:.0f} s")
    return describe(settings, stack.paths)


def _up(stack: Stack, deadline_s: float) -> None:
    settings, say = stack.settings, stack.say
    stack.start("postgres")
    stack.healthy("postgres", 60)
    created = postgres.ensure_databases(stack.pg)
    configdb.ensure(stack.pg, stack.keys.config_password)
    say(f"postgres up on port {stack.pg.port}" + (f"; created {', '.join(created)}" if created else ""))
    if settings.stack.executor == CELERY:
        stack.start("redis")
        stack.healthy("redis", 30)
    stack.start("airflow-init", "mlflow")
    stack.healthy("mlflow", deadline_s)
    say(f"mlflow up on {settings.tracking_uri} (backend: PostgreSQL database mlflow; basic auth, users and "
        f"permissions in database {postgres.AUTH_DATABASE})")
    stack.start("registry-init")
    stack.finished("registry-init", deadline_s)
    say("registry accounts ready: " + ", ".join(f"{a.name} ({a.model} on the model, {a.experiment} on the "
                                                f"experiment)" for a in ACCOUNTS)
        + f"; passwords in {stack.paths.secrets}")
    stack.start("bootstrap")
    stack.finished("airflow-init", deadline_s)
    say("airflow db migrate done")
    stack.start(*airflow_services(settings))
    stack.finished("bootstrap", deadline_s)
    say("bootstrap done: a champion is registered")
    replicas = [replica_name(i) for i in range(settings.stack.replicas)]
    stack.start(*replicas)
    for name in replicas:
        stack.healthy(name, deadline_s)
    say(f"{settings.stack.replicas} router replicas ready")
    stack.start("prometheus")
    stack.healthy("prometheus", deadline_s)
    stack.wait(lambda: checks.airflow_healthy(settings), "Airflow's scheduler, DAG processor and triggerer "
               "report healthy", deadline_s)
    say("airflow healthy: scheduler, dag-processor, triggerer")


def restart(settings: Settings, name: str, deadline_s: float = 120.0) -> dict:
    """Ask supervisord to restart one service, and wait for its health check; its process info."""
    running = manager(settings)
    if not running.answering():
        raise ServiceError(f"the stack of {settings.home} is not running; `make stack` starts it")
    known = running.processes()
    if name not in known:
        raise ServiceError(f"the stack has no service {name!r}; it runs {', '.join(known)}")
    stack = Stack(settings, print)
    running.stop([name])
    stack.start(name)
    if name in programs.ONE_SHOT:
        stack.finished(name, deadline_s)
    elif name in stack.checks:
        stack.healthy(name, deadline_s)
    else:
        stack.wait(lambda: running.info(name)["statename"] == "RUNNING", f"{name} runs", deadline_s)
    return running.info(name)


def status(settings: Settings) -> dict[str, dict]:
    """Service -> supervisord's process info ({} while the stack's supervisord does not run)."""
    running = manager(settings)
    return running.processes() if running.answering() else {}


def down(settings: Settings, say: Say = print) -> list[str]:
    """Stop every program of this home's stack phase by phase, then its supervisord; returns what was stopped."""
    running = manager(settings)
    if not running.answering():
        return []
    alive = [name for name, info in running.processes().items() if info["statename"] not in GONE]
    stopped = []
    for phase in STOP_PHASES:
        names = [name for name in alive if name.startswith(phase)]
        if names:
            started = time.monotonic()
            stopped += running.stop(names)
            say(f"stopped {', '.join(names)} in {time.monotonic() - started:.1f} s")
    running.shutdown()
    return stopped
