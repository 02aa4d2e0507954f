"""The stack's processes as data: one supervisord program per compose service (pure: it starts nothing).

Each program gets exactly its own secrets: the routers their tokens and customer key, the Airflow
processes the JWT secret, API secret key, Fernet key and their database URL, MLflow its backend
store URI (PostgreSQL's password, in an environment variable), the bootstrap only the tracking URI;
PostgreSQL and Prometheus nothing. `priority` is compose's `depends_on` read backwards: supervisord's
own shutdown stops the highest first, clients before the servers they use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ops import servers
from ops.env import REPO, child_env, inherited, own_part
from ops.manager.program import Program
from ops.ports import LOOPBACK
from ops.stack import postgres, prometheus
from ops.stack.topology import (
    Paths,
    Secrets,
    airflow_command,
    airflow_env,
    airflow_services,
    bootstrap_command,
    replica_name,
    replica_settings,
)
from ticket_ab.settings import Settings

ONE_SHOT = ("airflow-init", "bootstrap")
Own = Callable[[dict[str, str]], dict[str, str]]  # a program's whole environment -> what it adds to supervisord's


def _database_programs(settings: Settings, paths: Paths, pg: postgres.Cluster, own: Own) -> list[Program]:
    """PostgreSQL (as its own user when we are root; SIGINT is its fast shutdown, and its backends leave
    its process group, so only the postmaster is signalled) and MLflow on it."""
    mlflow = servers.mlflow(settings, pg.url("mlflow"))
    return [Program("postgres", postgres.command(pg), pg.directory, paths.log("postgres"), user=postgres.run_as(),
                    stopsignal="INT", stopwaitsecs=30, stopasgroup=False, priority=10),
            Program("mlflow", mlflow.command, REPO, paths.log("mlflow"), own(mlflow.env), priority=20)]


def _airflow_programs(settings: Settings, paths: Paths, env: dict[str, str], bootstrap_n: int,
                      own: Own) -> list[Program]:
    """`airflow db migrate` and the bootstrap once per `up`, then the long-running Airflow services."""
    return [Program.one_shot("airflow-init", airflow_command("airflow-init"), settings.airflow_dir,
                             paths.log("airflow-init"), own(env), priority=30),
            Program.one_shot("bootstrap", bootstrap_command(bootstrap_n), REPO, paths.log("bootstrap"),
                             own(child_env(settings)), priority=30),
            *(Program(name, airflow_command(name), settings.airflow_dir, paths.log(name), own(env), stopwaitsecs=30,
                      priority=40) for name in airflow_services(settings))]


def _serving_programs(settings: Settings, paths: Paths, keys: Secrets, prometheus_config: Path,
                      own: Own) -> list[Program]:
    """The router replicas (gunicorn's graceful timeout is 5 s) and Prometheus scraping them."""
    routers = [Program(replica_name(i), servers.gunicorn_command(), REPO, paths.log(replica_name(i)),
                       own(child_env(replica, secrets=True)), stopwaitsecs=15, priority=50)
               for i, replica in enumerate(replica_settings(settings, keys))]
    return [*routers, Program("prometheus", prometheus.command(prometheus_config, settings.stack.prometheus_port),
                              REPO, paths.log("prometheus"), priority=60)]


def programs(settings: Settings, paths: Paths, keys: Secrets, pg: postgres.Cluster, prometheus_config: Path,
             bootstrap_n: int) -> list[Program]:
    """Every program of the stack, in start order; environments are what each adds to supervisord's own."""
    base = inherited(settings)

    def own(env: dict[str, str]) -> dict[str, str]:
        return own_part(env, base)

    redis = [Program("redis", prometheus.redis_command(paths.root / "redis", settings.stack.redis_port), REPO,
                     paths.log("redis"), priority=20)] if "airflow-worker" in airflow_services(settings) else []
    return [*_database_programs(settings, paths, pg, own), *redis,
            *_airflow_programs(settings, paths, airflow_env(settings, pg, keys), bootstrap_n, own),
            *_serving_programs(settings, paths, keys, prometheus_config, own)]


def prometheus_targets(settings: Settings, keys: Secrets) -> list[str]:
    """host:port of every replica, as Prometheus scrapes them."""
    return [f"{LOOPBACK}:{replica.router.port}" for replica in replica_settings(settings, keys)]
