"""The A/B config store on a real PostgreSQL, set up as `make stack` sets it up (ops.stack.configdb): the
routers' role writes the config by compare-and-swap and can do nothing else."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from ops.health import wait_until
from ops.ports import LOOPBACK, free_port
from ops.stack import configdb, postgres
from router.configdb import ConfigUnavailable, Conflict, postgres_table
from tests.concurrency import race

PASSWORD = "router-config-password"
MODEL = "ticket-classifier"


@pytest.fixture(scope="module")
def cluster():
    """A throwaway cluster (as the stack's: 127.0.0.1, scram, run as `postgres` when we are root) with the
    config database and role provisioned."""
    home = Path(tempfile.mkdtemp(prefix="ticket-ab-configdb-"))
    home.chmod(0o755)  # the cluster's own user must reach its directory
    pg = postgres.Cluster(home / "pg", free_port())
    postgres.initdb(pg)
    with open(home / "postgres.log", "ab") as log:
        server = subprocess.Popen(postgres.command(pg), user=postgres.run_as(), stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, cwd=pg.directory)
    try:
        wait_until(lambda: postgres.accepts_connections(pg), 60, "PostgreSQL accepts connections",
                   failed=lambda: None if server.poll() is None else "postgres exited")
        configdb.ensure(pg, PASSWORD)
        configdb.ensure(pg, PASSWORD)  # a second `stack up` finds everything in place
        yield pg
    finally:
        server.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        server.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def as_router(cluster: postgres.Cluster, database: str = configdb.DATABASE):
    return psycopg2.connect(host=LOOPBACK, port=cluster.port, user=configdb.ROLE, password=PASSWORD, dbname=database,
                            connect_timeout=5)


def test_of_twenty_concurrent_swaps_from_one_version_exactly_one_is_written(cluster):
    table = postgres_table(configdb.url(cluster.port, PASSWORD), MODEL)
    assert table.read().version == 0
    table.swap(0, '{"ab_split_b": 0.5}', "setup")
    def swap(n: int) -> str:
        try:
            table.swap(1, f'{{"ab_split_b": {n / 100}}}', f"admin-{n}")
            return f"admin-{n}"
        except Conflict:
            return "conflict"

    outcomes = race(20, swap)
    winners = [o for o in outcomes if o != "conflict"]
    assert len(winners) == 1 and outcomes.count("conflict") == 19
    assert table.read().version == 2
    with postgres.connect(cluster, configdb.DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, changed_by FROM ab_config_history WHERE model = %s ORDER BY version", (MODEL,))
        assert cur.fetchall() == [(1, "setup"), (2, winners[0])]


@pytest.mark.parametrize("statement", ["DELETE FROM ab_config", "UPDATE ab_config_history SET changed_by = 'x'",
                                       "DELETE FROM ab_config_history", "DROP TABLE ab_config",
                                       "CREATE TABLE mine (x int)"])
def test_the_routers_role_may_not_delete_rewrite_history_or_change_the_schema(cluster, statement):
    conn = as_router(cluster)
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def test_in_the_mlflow_and_airflow_databases_the_routers_role_may_create_nothing(cluster):
    postgres.ensure_databases(cluster)
    for database in postgres.DATABASES:
        conn = as_router(cluster, database)  # PUBLIC may connect to them; nothing in them is the router's
        try:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
                cur.execute("CREATE TABLE mine (x int)")
        finally:
            conn.close()


def test_a_wrong_password_is_config_unavailable_and_the_message_holds_no_password(cluster):
    table = postgres_table(configdb.url(cluster.port, "not-the-password"), MODEL)
    with pytest.raises(ConfigUnavailable) as refused:
        table.read()
    assert "not-the-password" not in str(refused.value) and configdb.ROLE in str(refused.value)
