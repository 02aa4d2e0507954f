"""The A/B config's store on the stack's PostgreSQL: a database of its own and a least-privilege role for the routers.

The routers share their experiment config through `router.configdb` (compare-and-swap on a versioned
row). On the stack that is the `config` database, created here with its tables by the cluster's
owner; the routers log in as `ticketab_router`, which may connect to that database only (PUBLIC's
CONNECT on it is revoked), SELECT, INSERT and UPDATE the config row and INSERT into its history:
no DELETE, no DDL, no other table. The role's password is one of the stack's secrets and reaches
only the routers (in their TICKET_AB_CONFIG_STORE).
"""

from __future__ import annotations

from ops.ports import LOOPBACK
from ops.stack import postgres
from router.configdb import SCHEMA

DATABASE = "config"
ROLE = "ticketab_router"


def url(port: int, password: str) -> str:
    """The routers' TICKET_AB_CONFIG_STORE."""
    return f"postgresql://{ROLE}:{password}@{LOOPBACK}:{port}/{DATABASE}"


def ensure(cluster: postgres.Cluster, password: str) -> None:
    """Create (or bring up to date) the role, the database, its tables and the grants; idempotent."""
    conn = postgres.connect(cluster)
    if conn is None:
        raise postgres.PostgresError(f"PostgreSQL on port {cluster.port} does not accept connections")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(f"{verb} ROLE {ROLE} WITH LOGIN PASSWORD %s", (password,))  # fixed names: nothing to inject
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
            cur.execute(f'REVOKE ALL ON DATABASE "{DATABASE}" FROM PUBLIC')
            cur.execute(f'GRANT CONNECT ON DATABASE "{DATABASE}" TO {ROLE}')
    finally:
        conn.close()
    _tables(cluster)


def _tables(cluster: postgres.Cluster) -> None:
    conn = postgres.connect(cluster, DATABASE)
    if conn is None:
        raise postgres.PostgresError(f"the {DATABASE} database on port {cluster.port} does not accept connections")
    try:
        with conn.cursor() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            cur.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
            cur.execute(f"GRANT SELECT, INSERT, UPDATE ON ab_config TO {ROLE}")
            cur.execute(f"GRANT INSERT ON ab_config_history TO {ROLE}")
    finally:
        conn.close()
