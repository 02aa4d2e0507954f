"""The A/B config's transactional store: one row per registered model with a version, written by compare-and-swap.

A registry tag has no conditional write, so two concurrent `POST /config` could each read the same
config and the second write would silently undo the first. Here every write is ONE transaction:
`UPDATE ab_config SET version = version + 1, ... WHERE model = ? AND version = ?` (or the row's
first INSERT), plus a row of `ab_config_history` (who set what, when: the audit trail). Zero rows
updated means another write came first: `Conflict`, and nothing was written.

Two back ends behind the same SQL (DB-API, `?` placeholders rewritten for psycopg2):

- `sqlite:///path` (default: `$TICKET_AB_HOME/router/config.db`): the single-host demo, the tests, and
  replicas on one host that share the file. The router creates its tables (it owns the file); WAL
  mode lets the polls read while a write commits.
- `postgresql://user@host:port/db`: the stack. The tables are created by the stack's setup
  (ops.stack.configdb), not by the router, whose role may only SELECT, INSERT and UPDATE `ab_config`
  and INSERT into `ab_config_history`. The password comes from the URL or libpq's PGPASSFILE.

A connection per call: the poll asks once per TICKET_AB_RELOAD_S per worker, so holding one open
would buy nothing and need reconnect logic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2

FILE = "config.db"  # under the router's state dir, when TICKET_AB_CONFIG_STORE is empty
CONNECT_TIMEOUT_S = 3
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ab_config (model TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT NOT NULL, "
    "updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ab_config_history (model TEXT NOT NULL, version INTEGER NOT NULL, "
    "value TEXT NOT NULL, changed_at TEXT NOT NULL, changed_by TEXT NOT NULL, PRIMARY KEY (model, version))",
)
_READ = "SELECT version, value FROM ab_config WHERE model = ?"
_FIRST = "INSERT INTO ab_config (model, version, value, updated_at) VALUES (?, 1, ?, ?) ON CONFLICT (model) DO NOTHING"
_NEXT = "UPDATE ab_config SET version = version + 1, value = ?, updated_at = ? WHERE model = ? AND version = ?"
_AUDIT = "INSERT INTO ab_config_history (model, version, value, changed_at, changed_by) VALUES (?, ?, ?, ?, ?)"


class ConfigUnavailable(RuntimeError):
    """The store cannot be read or written now; the message names it (never its password)."""


class Conflict(Exception):
    """The row was written by someone else since the version the write expected; nothing was written."""


@dataclass(frozen=True)
class Stored:
    """The row: its version (0: never written) and the config JSON (None: never written)."""

    version: int = 0
    value: str | None = None


class ConfigTable:
    """One model's row in a DB-API database; `connect` opens a connection, `placeholder` is its paramstyle."""

    def __init__(self, connect: Callable[[], Any], model: str, placeholder: str = "?", where: str = "") -> None:
        self._connect, self.model, self._placeholder, self.where = connect, model, placeholder, where

    def read(self) -> Stored:
        """The row as committed now; ConfigUnavailable if the store cannot be asked."""
        with self._session() as conn:
            cur = conn.cursor()
            cur.execute(self._sql(_READ), (self.model,))
            row = cur.fetchone()
        return Stored(int(row[0]), str(row[1])) if row else Stored()

    def swap(self, expected: int, value: str, by: str) -> int:
        """Write `value` if the row is still at version `expected`; the new version, or Conflict."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._session() as conn:
            cur = conn.cursor()
            if expected == 0:
                cur.execute(self._sql(_FIRST), (self.model, value, now))
            else:
                cur.execute(self._sql(_NEXT), (value, now, self.model, expected))
            if cur.rowcount != 1:
                raise Conflict(f"the A/B config of {self.model!r} is no longer at version {expected}")
            cur.execute(self._sql(_AUDIT), (self.model, expected + 1, value, now, by))
        return expected + 1

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self._placeholder)

    def _session(self) -> _Transaction:
        return _Transaction(self._connect, self.where)


class _Transaction:
    """One connection and one transaction: committed on success, rolled back on any error, always closed.

    Database errors become ConfigUnavailable naming the store (`where`: no password in it); a Conflict
    passes through after the rollback.
    """

    def __init__(self, connect: Callable[[], Any], where: str) -> None:
        self._connect, self._where, self._conn = connect, where, None

    def __enter__(self) -> Any:
        try:
            self._conn = self._connect()
        except (sqlite3.Error, psycopg2.Error, OSError) as exc:
            raise ConfigUnavailable(f"the A/B config store {self._where} cannot be reached: "
                                    f"{_first_line(exc)}") from None
        return self._conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        conn, self._conn = self._conn, None
        try:
            if kind is None:
                conn.commit()
            else:
                conn.rollback()
        except (sqlite3.Error, psycopg2.Error) as error:
            raise ConfigUnavailable(f"the A/B config store {self._where} failed: {_first_line(error)}") from None
        finally:
            conn.close()
        if isinstance(exc, sqlite3.Error | psycopg2.Error):
            raise ConfigUnavailable(f"the A/B config store {self._where} failed: {_first_line(exc)}") from None
        return False


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def sqlite_table(path: Path, model: str) -> ConfigTable:
    """The config table in a SQLite file, created with its tables (and in WAL mode) if it is new."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=10.0)

    table = ConfigTable(connect, model, "?", f"sqlite:///{path}")
    with table._session() as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA:
            conn.execute(statement)
    return table


def postgres_table(url: str, model: str) -> ConfigTable:
    """The config table in PostgreSQL (created by the stack's setup); `url` may carry the password."""

    def connect() -> Any:
        return psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT_S, application_name="ticket-ab-router")

    return ConfigTable(connect, model, "%s", _without_password(url))


def _without_password(url: str) -> str:
    """The URL as a message may show it."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}{at}{host}" if at else url


def open_table(setting: str, default_dir: Path, model: str) -> ConfigTable:
    """The table TICKET_AB_CONFIG_STORE names: empty or `sqlite:///path`, or a `postgresql://` URL."""
    if setting.startswith(("postgresql://", "postgres://")):
        return postgres_table(setting, model)
    if not setting:
        return sqlite_table(default_dir / FILE, model)
    if setting.startswith("sqlite:///"):
        return sqlite_table(Path(setting.removeprefix("sqlite:///")), model)
    raise ValueError("TICKET_AB_CONFIG_STORE must be empty, sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
