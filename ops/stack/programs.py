"""The stack's processes as data: one supervisord program per compose service (pure: it starts nothing).

Each program gets exactly its own secrets: the routers their tokens, customer key and the registry's
`router` account; the Airflow processes the JWT secret, API secret key, Fernet key and their database
URL, and those that run the DAGs' tasks (`task_runner_env`) the `autopilot` account, the admin token
the experiment DAG changes the split with and the chat alerts' URLs; MLflow its backend store URI
(PostgreSQL's password, in an environment variable), its admin password and CSRF key (the auth
config file it reads names its permission database); `registry-init` the admin's credentials and the
accounts' passwords it sets; the bootstrap the `operator` account (it makes the first champion);
PostgreSQL and Prometheus nothing. `priority` is compose's `depends_on` read backwards: supervisord's
own shutdown stops the highest first, clients before the servers they use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ops import dagrun, servers
from ops.env import REPO, child_env, inherited, own_part
from ops.manager.program import Program
from ops.ports import LOOPBACK
from ops.stack import postgres, prometheus
from ops.stack.accounts import ACCOUNTS, ADMIN, AUTOPILOT, OPERATOR, ROUTER, credentials
from ops.stack.topology import (
    Paths,
    Secrets,
    airflow_command,
    airflow_env,
    airflow_services,
    bootstrap_command,
    experiment_router_url,
    registry_init_command,
    replica_name,
    replica_settings,
    task_runners,
)
from ticket_ab.settings import Settings, env_names

ONE_SHOT = ("airflow-init", "registry-init", "bootstrap")
Own = Callable[[dict[str, str]], dict[str, str]]  # a program's whole environment -> what it adds to supervisord's


def account_env(keys: Secrets, account: str) -> dict[str, str]:
    """The registry credentials of one account, for the environment of the process that acts as it."""
    return credentials(account, keys.registry_password(account))


def task_runner_env(settings: Settings, keys: Secrets) -> dict[str, str]:
    """What only the Airflow processes that run the DAGs' tasks hold, beyond every Airflow process's environment:
    the registry's `autopilot` account, the experiment DAG's router (replica 1) and the stack's admin token it
    changes the split with, and the alert URLs when set (ops.dagrun.dag_secrets: the same two secrets
    `make pipeline` and `make airflow` give their task-running process)."""
    replica = replica_settings(settings, keys)[0]  # the settings with the stack's tokens (and the alert URLs)
    return {**account_env(keys, AUTOPILOT.name), **dagrun.dag_secrets(replica),
            env_names()["rollout.router_url"]: experiment_router_url(settings, keys)}


def router_env(replica: Settings, keys: Secrets) -> dict[str, str]:
    """A replica's whole environment: its settings with their tokens, the `router` account; not the alert URLs
    (a secret setting too, but only the DAGs send alerts)."""
    env = child_env(replica, account_env(keys, ROUTER.name), secrets=True)
    env.pop(env_names()["alert.urls"], None)
    return env


def _database_programs(settings: Settings, paths: Paths, keys: Secrets, pg: postgres.Cluster,
                       own: Own) -> list[Program]:
    """PostgreSQL (as its own user when we are root; SIGINT is its fast shutdown, and its backends leave
    its process group, so only the postmaster is signalled), MLflow on it with its auth app, and the
    one-shot that sets the registry's accounts up as MLflow's admin."""
    auth = servers.RegistryAuth(paths.registry_auth, keys.registry_admin_password, keys.mlflow_secret_key)
    mlflow = servers.mlflow(settings, pg.url("mlflow"), auth)
    accounts = {**account_env(keys, ADMIN),
                **{account.password_variable: keys.registry_password(account.name) for account in ACCOUNTS}}
    return [Program("postgres", postgres.command(pg), pg.directory, paths.log("postgres"), user=postgres.run_as(),
                    stopsignal="INT", stopwaitsecs=30, stopasgroup=False, priority=10),
            Program("mlflow", mlflow.command, REPO, paths.log("mlflow"), own(mlflow.env), priority=20),
            Program.one_shot("registry-init", registry_init_command(), REPO, paths.log("registry-init"),
                             own(child_env(settings, accounts)), priority=25)]


def _airflow_programs(settings: Settings, paths: Paths, keys: Secrets, env: dict[str, str], bootstrap_n: int,
                      own: Own) -> list[Program]:
    """`airflow db migrate` and the bootstrap once per `up`, then the long-running Airflow services; only
    those that run the DAGs' tasks hold `task_runner_env` (the API server, DAG processor and triggerer
    have no registry account, no admin token, no alert URL)."""
    runners, runner_env = task_runners(settings), task_runner_env(settings, keys)
    return [Program.one_shot("airflow-init", airflow_command("airflow-init"), settings.airflow_dir,
                             paths.log("airflow-init"), own({**env, **postgres.MIGRATION_OPTIONS}), priority=30),
            Program.one_shot("bootstrap", bootstrap_command(bootstrap_n), REPO, paths.log("bootstrap"),
                             own(child_env(settings, account_env(keys, OPERATOR.name))), priority=30),
            *(Program(name, airflow_command(name), settings.airflow_dir, paths.log(name),
                      own({**env, **(runner_env if name in runners else {})}), stopwaitsecs=30,
                      priority=40) for name in airflow_services(settings))]


def _serving_programs(settings: Settings, paths: Paths, keys: Secrets, prometheus_config: Path,
                      own: Own) -> list[Program]:
    """The router replicas (gunicorn's graceful timeout is 5 s) and Prometheus scraping them."""
    routers = [Program(replica_name(i), servers.gunicorn_command(), REPO, paths.log(replica_name(i)),
                       own(router_env(replica, keys)), stopwaitsecs=15, priority=50)
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
    return [*_database_programs(settings, paths, keys, pg, own), *redis,
            *_airflow_programs(settings, paths, keys, airflow_env(settings, pg, keys), bootstrap_n, own),
            *_serving_programs(settings, paths, keys, prometheus_config, own)]


def prometheus_targets(settings: Settings, keys: Secrets) -> list[str]:
    """host:port of every replica, as Prometheus scrapes them."""
    return [f"{LOOPBACK}:{replica.router.port}" for replica in replica_settings(settings, keys)]
