"""The log root as DuckDB views, read where it lies: out of core, only the days a window needs.

The in-memory readers (`ticket_ab.requestlog`) parse every row into pandas, about 1.9 GB per million
requests; a week of a busy desk does not fit. DuckDB scans the same Hive-partitioned files (the
writers' CSV shards and the compacted Parquet day files) in bounded memory, spilling to a private
temporary folder, so the callers aggregate in SQL and pandas only sees aggregates.

The views `raw_requests` and `raw_feedback` hold every column of the log as text ('' when absent, as
the CSV reader gives it) plus `ts` (the parsed UTC timestamp, NULL when unreadable) and `ord` (a tie-breaker
for rows stamped in the same millisecond: the position in memory, a 64-bit hash of the request id in files;
any fixed order of ties will do, and the hash costs 8 bytes a row where the id costs 32). `frames()` makes
the same views of frames already in memory (the readers' output), so one SQL serves both paths.

The CSV dialect is given, never sniffed (a torn line can fool a sniffer): comma, double quote
escaped by doubling, a header line per file, every column text. A line that does not have the
header's columns (a torn write) is skipped and counted, and so is one whose `crc` is not eight hex
digits (torn inside it). DuckDB has no CRC-32, so a line with the right shape is not checked
against its checksum here: closed days are verified line by line when they are compacted
(`ticket_ab.compact`), and only the open days (the last two) are read as CSV.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from ticket_ab.dayfile import DROPPED_ATTR, SHARDS_ATTR
from ticket_ab.logstore import COMPACTED_SUFFIX, FEEDBACK, REQUESTS, day_files, partitions
from ticket_ab.logwriter import CRC
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS

CSV_DIALECT = "header=true, delim=',', quote='\"', escape='\"', all_varchar=true, union_by_name=true, filename=true"
CRC_PATTERN = "[0-9a-f]{8}"
_STAMP = len("2026-11-24T10:00:00.123+00:00")
VIEWS = {REQUESTS: ("raw_requests", REQUEST_COLUMNS), FEEDBACK: ("raw_feedback", FEEDBACK_COLUMNS)}


@dataclass
class Scan:
    """An open DuckDB connection with the two views, and what was read to make them."""

    con: duckdb.DuckDBPyConnection
    files: dict[str, list[Path]] = field(default_factory=dict)  # per log kind, the files the views read
    malformed: dict[str, int] = field(default_factory=dict)  # per log kind, lines skipped as not a whole row


@contextmanager
def connect(memory_mb: int, threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection capped at `memory_mb`, with as many threads as cores unless `threads` is given. Its
    database is a file in a private temporary folder that goes with the connection: tables there are stored
    compressed and paged in and out, so a window of millions of rows costs disk, not memory (the rest spills
    to the same folder)."""
    with tempfile.TemporaryDirectory(prefix="ticket-ab-scan-") as spill:
        con = duckdb.connect(str(Path(spill) / "window.duckdb"),
                             config={"memory_limit": f"{memory_mb}MB", "temp_directory": spill,
                                     "preserve_insertion_order": False})
        try:
            con.execute("SET enable_progress_bar = false")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            yield con
        finally:
            con.close()


def files(con: duckdb.DuckDBPyConnection, root: Path, feedback_root: Path, since: pd.Timestamp | None, *,
          day: date | None = None, count: bool = True) -> Scan:
    """The views over the log files of the days from `since`'s on (every day: None), or of `day` alone (one task of a
    window typed day by day on a cluster). Without `count`, the malformed lines are left uncounted: a caller whose day
    tasks counted them saves a second scan of every shard."""
    scan = Scan(con)
    first = day or (since.date() if since is not None else None)
    for kind, base in ((REQUESTS, root), (FEEDBACK, feedback_root)):
        view, columns = VIEWS[kind]
        shards, compacted = _day_files(base, kind, first, day)
        parts = []
        if shards:
            parts.append(_select(con, f"read_csv({_list(shards)}, {CSV_DIALECT}, ignore_errors=true)", columns,
                                 shaped=True))
        if compacted:
            parts.append(_select(con, f"read_parquet({_list(compacted)}, union_by_name=true, filename=true)", columns))
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS " + (" UNION ALL ".join(parts) or _empty(columns)))
        scan.files[kind] = compacted + shards
        if count:
            scan.malformed[kind] = _rejected(con, shards) + _dropped_heads(compacted, since)
    return scan


def frames(con: duckdb.DuckDBPyConnection, requests: pd.DataFrame, feedback: pd.DataFrame) -> Scan:
    """The same views over frames in memory (`timestamp` parsed, in log order): `ord` is the row's position."""
    scan = Scan(con, {REQUESTS: [], FEEDBACK: []}, {REQUESTS: 0, FEEDBACK: 0})
    for kind, frame in ((REQUESTS, requests), (FEEDBACK, feedback)):
        view, columns = VIEWS[kind]
        text = frame.reindex(columns=[c for c in columns if c != "timestamp"], fill_value="")
        text = text.fillna("").astype(str).reset_index(drop=True)
        stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce").reset_index(drop=True)
        source = text.assign(ts=stamps, ord=range(len(text)))
        con.register(f"{view}_frame", source)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_frame")
    return scan


def _day_files(root: Path, kind: str, first: date | None, last: date | None) -> tuple[list[Path], list[Path]]:
    """The CSV shards (those no day file lists as folded into it) and the compacted day files of the days."""
    shards, compacted = [], []
    for _, folder in partitions(Path(root), kind, first, last):
        listed = day_files(folder, kind)
        days = [f for f in listed if f.suffix == COMPACTED_SUFFIX]
        folded = {name for f in days for name in _folded(f)}
        compacted += days
        shards += [f for f in listed if f.suffix != COMPACTED_SUFFIX and f.name not in folded]
    return shards, compacted


def _folded(day_file: Path) -> list[str]:
    """The shard names a day file records as folded into it."""
    return list(_attribute(day_file, SHARDS_ATTR) or [])


def _select(con: duckdb.DuckDBPyConnection, source: str, columns: tuple[str, ...], shaped: bool = False) -> str:
    """Every log column of `source` as text ('' when NULL, or when no file has the column: files written
    before it was added), the parsed time `ts` and the tie-breaker `ord`; with `shaped`, only the lines
    whose `crc` is eight hex digits (the rest are torn)."""
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    texts = ", ".join((f"coalesce(CAST({_quote(c)} AS VARCHAR), '')" if c in present else "''") + f" AS {_quote(c)}"
                      for c in columns if c != "timestamp")
    where = f" WHERE regexp_full_match(coalesce({CRC}, ''), '{CRC_PATTERN}')" if shaped else ""
    request_id = "coalesce(request_id, '')" if "request_id" in present else "''"
    return (f"SELECT try_cast(\"timestamp\" AS TIMESTAMPTZ) AS ts, {texts}, hash({request_id}) AS ord "
            f"FROM {source}{where}")


def moment(at: pd.Timestamp) -> str:
    """A moment as a DuckDB TIMESTAMPTZ literal (from a Timestamp's ISO form: nothing to escape)."""
    return f"'{pd.Timestamp(at).isoformat()}'::TIMESTAMPTZ"


def later_duplicates(table: str, keep: str, where: str, order: str) -> str:
    """SQL selecting `keep` of the rows of `table` (those matching `where`) that repeat an earlier row's request id
    in `order`: a client retry logs a request twice and the first row counts. Only ids seen more than once are
    ranked, so a window of millions sorts its few duplicates, not itself."""
    return f"""SELECT * EXCLUDE (k) FROM (
        SELECT {keep}, row_number() OVER (PARTITION BY request_id ORDER BY {order}) AS k FROM {table}
        WHERE {where} AND request_id IN (SELECT request_id FROM {table} WHERE {where} AND request_id <> ''
                                         GROUP BY request_id HAVING count(*) > 1)) WHERE k > 1"""


def _empty(columns: tuple[str, ...]) -> str:
    texts = ", ".join(f"''::VARCHAR AS {_quote(c)}" for c in columns if c != "timestamp")
    return f"SELECT NULL::TIMESTAMPTZ AS ts, {texts}, 0::UBIGINT AS ord WHERE false"


def _rejected(con: duckdb.DuckDBPyConnection, shards: list[Path]) -> int:
    """Lines of the shards that are not a whole row: rejected by shape, or with a `crc` not of eight hex digits."""
    total = 0
    for shard in shards:  # one file at a time: DuckDB keeps no rejects of a read by name
        dialect = CSV_DIALECT.replace(", union_by_name=true", "")
        source = (f"read_csv({_list([shard])}, {dialect}, ignore_errors=true, store_rejects=true, "
                  "rejects_table='shard_rejects', rejects_scan='shard_scans')")
        # fetchall, not fetchone: fetchone leaves the scan unfinished, and the rejects table comes at its end
        total += con.execute(f"SELECT count(*) FROM {source} WHERE NOT regexp_full_match(coalesce({CRC}, ''), "
                             f"'{CRC_PATTERN}')").fetchall()[0][0]
        try:  # the rejects table exists only once a line was rejected
            total += con.execute("SELECT count(DISTINCT line) FROM shard_rejects").fetchone()[0]
            con.execute("DROP TABLE shard_rejects; DROP TABLE IF EXISTS shard_scans")
        except duckdb.CatalogException:
            pass
    return int(total)


def _dropped_heads(day_files_: list[Path], since: pd.Timestamp | None) -> int:
    """The lines a day file's shards had that did not count (their heads are kept in its metadata), from
    `since` on when a head's stamp says when, as the in-memory reader counts them."""
    total = 0
    for f in day_files_:
        heads = _attribute(f, DROPPED_ATTR) or ""
        for head in heads.split("\n")[:-1]:  # one head per dropped line, each ended by "\n"; "": a torn end
            stamp = pd.to_datetime(head[:_STAMP], utc=True, errors="coerce", format="ISO8601")
            total += int(since is None or pd.isna(stamp) or stamp >= since)
    return total


def _attribute(day_file: Path, name: str):
    """One of the attributes a day file keeps in its metadata, read without its rows."""
    metadata = pq.read_schema(day_file).pandas_metadata or {}
    return metadata.get("attributes", {}).get(name)


def _list(paths: list[Path]) -> str:
    return "[" + ", ".join(_literal(str(f)) for f in paths) + "]"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
