"""The stack's PostgreSQL: one cluster under TICKET_AB_HOME holding the MLflow, MLflow auth and Airflow databases.

Compose runs the `postgres` image; natively we run the same major version's binaries from PATH
(`initdb`, `postgres`). The cluster is created on first use, listens on 127.0.0.1 only (no Unix
socket: nothing else to secure), and authenticates with a password generated then and kept beside
it (mode 0600). PostgreSQL refuses to run as root, so as root (CI, containers) the cluster belongs to
the `postgres` system user and its processes run as that user.

`synchronous_commit=on`: a commit the registry or Airflow acknowledged (an alias move, a task's
state) is on disk before its answer, so a power cut loses none of them. Only the schema migration,
which a crash simply re-runs, commits asynchronously (`MIGRATION_OPTIONS` in its environment): it
halves `airflow db migrate` on slow disks (53 s -> 26 s measured here).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from ops.health import ServiceError
from ops.ports import LOOPBACK
from ops.servers import binary as find_binary
from ticket_ab.atomic import write_atomic

USER = "ticketab"
AUTH_DATABASE = "mlflow_auth"  # MLflow's users and permissions (its basic-auth app)
DATABASES = ("mlflow", "airflow", AUTH_DATABASE)
MIGRATION_OPTIONS = {"PGOPTIONS": "-c synchronous_commit=off"}  # libpq: for a re-runnable migration only
SERVICE_USER = "postgres"  # the system user the cluster runs as when we are root
SETTINGS = ("listen_addresses = '127.0.0.1'", "unix_socket_directories = ''", "synchronous_commit = on",
            "max_connections = 200")


class PostgresError(ServiceError):
    """PostgreSQL could not be set up; the message names the command or path at fault."""


@dataclass(frozen=True)
class Cluster:
    """Where the cluster lives and how to reach it."""

    directory: Path  # holds data/ and the password file
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def password_file(self) -> Path:
        return self.directory / "password"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of one database (MLflow's and Airflow's metadata stores take this form)."""
        return f"{driver}://{USER}:{self.password()}@{LOOPBACK}:{self.port}/{database}"


def run_as() -> str | None:
    """The user PostgreSQL must run as: ours, or `postgres` when we are root."""
    return SERVICE_USER if os.geteuid() == 0 else None


def binary(name: str) -> str:
    return find_binary(name, "install PostgreSQL 15 (Debian: postgresql-15) or add its bin directory to PATH")


def _hand_over(path: Path, user: str | None) -> None:
    """As root, give `path` to the service user and check it can reach it (a 0700 parent would stop it)."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.parents:
        if not os.stat(parent).st_mode & 0o001:
            raise PostgresError(f"the PostgreSQL user '{user}' cannot enter {parent} (mode "
                                f"{oct(os.stat(parent).st_mode & 0o777)}): put TICKET_AB_HOME somewhere it can reach")


def initdb(cluster: Cluster) -> bool:
    """Create the cluster if it does not exist yet; True when it was created now."""
    if (cluster.data / "PG_VERSION").exists():
        return False
    user = run_as()
    cluster.directory.mkdir(parents=True, exist_ok=True)
    write_atomic(cluster.password_file, secrets.token_urlsafe(24) + "\n")  # created 0600: never readable by others
    cluster.data.mkdir(mode=0o700, exist_ok=True)
    _hand_over(cluster.data, user)
    pwfile = cluster.data.parent / ".initdb-password"
    write_atomic(pwfile, cluster.password() + "\n")
    _hand_over(pwfile, user)
    try:
        result = subprocess.run([binary("initdb"), "-D", str(cluster.data), "-U", USER, f"--pwfile={pwfile}",
                                 "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions"],
                                capture_output=True, text=True, user=user, cwd=cluster.directory)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(cluster.data, ignore_errors=True)
        raise PostgresError(f"initdb failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    with open(cluster.data / "postgresql.conf", "a") as conf:
        conf.write("\n# ticket-ab stack\n" + "\n".join(SETTINGS) + "\n")
    return True


def command(cluster: Cluster) -> list[str]:
    """The postmaster in the foreground (supervisord owns it), on the cluster's port."""
    return [binary("postgres"), "-D", str(cluster.data), "-p", str(cluster.port)]


def connect(cluster: Cluster, database: str = "postgres"):
    """A psycopg2 connection (autocommit), or None while the server does not accept connections yet."""
    try:
        conn = psycopg2.connect(host=LOOPBACK, port=cluster.port, user=USER, password=cluster.password(),
                                dbname=database, connect_timeout=2)
    except psycopg2.OperationalError:
        return None
    conn.autocommit = True
    return conn


def accepts_connections(cluster: Cluster) -> bool:
    conn = connect(cluster)
    if conn is None:
        return False
    conn.close()
    return True


def ensure_databases(cluster: Cluster) -> list[str]:
    """Create the MLflow and Airflow databases that do not exist yet; returns those created."""
    conn = connect(cluster)
    if conn is None:
        raise PostgresError(f"PostgreSQL on port {cluster.port} does not accept connections")
    created = []
    try:
        with conn.cursor() as cur:
            for name in DATABASES:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')  # a fixed name of ours: nothing to inject
                    created.append(name)
    finally:
        conn.close()
    return created
