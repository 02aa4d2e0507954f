"""The DAG window's logs in DuckDB: the window is counted where it lies and only what the run keeps reaches pandas.

`retrain.tasks.window.new_requests` defines the window's request rows for rows in memory; this module
carries out the same definition in SQL over `ticket_ab.logscan`'s views of the log files, out of core
(a week of a busy desk is tens of GB as pandas strings):

- the rows read are those stamped in [since, until] (`since` the watermark, `until` the settle cut-off);
  a row whose stamp is unreadable is malformed, as a torn line is;
- the window's rows are those stamped after the watermark with a text that is not blank (blank as Python's
  `str.strip()` sees it), one per request id: the first in time order (ties: logscan's `ord`, then the row's
  own values: a fixed order, so a retry of the run keeps the same row);
- every count is over the whole window, in SQL; pandas gets the feedback (bounded by the labels a window
  can have), the request ids of it that are known or in the window (never the window's ids), and the rows
  the run keeps: every labelled one and the drift sample.

The drift sample is the window's first `Sampling.rows` routed tickets in the order of an MD5 of the seed and
the request id: a uniform sample of the window (labelled or not), the same set for the same window whatever
the order the files are read in, and one that keeps most of its rows when a retry's window grows by a few.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from ticket_ab import logscan
from ticket_ab.settings import Settings

BLANK = r"[\s\x0b\x1c-\x1f\x85\pZ]*"  # exactly the characters Python's str.strip() strips (RE2 syntax)
TIES = "ts, ord, served_topic, ticket_id, customer_id, text"  # time, logscan's tie-breaker, the row: a fixed order
LABELS = "win_labels"


@dataclass(frozen=True)
class Sampling:
    """How many of the window's routed tickets the drift check sees, drawn with which seed, in how much memory.

    The default size, 50,000 (TICKET_AB_WINDOW_SAMPLE_ROWS), is ten times the champion's reference
    (TICKET_AB_REFERENCE_ROWS, 5,000): the domain classifier's AUC and the topic-mix test are then limited by
    the reference, not by the sample, and a share measured on it (unseen words, Russian) has a standard error
    of at most 0.22 points against thresholds of 3 and 10; more rows would cost memory (tens of MB of texts
    per 50,000) and the drift check's time without changing a decision."""

    rows: int
    seed: int
    memory_mb: int


def sampling(settings: Settings) -> Sampling:
    """The run's sampling: TICKET_AB_WINDOW_SAMPLE_ROWS, the shared seed, and the query engine's memory cap
    (the A/B analysis' TICKET_AB_TEST_MEMORY_MB: one engine, one budget)."""
    return Sampling(rows=settings.drift.window_sample_rows, seed=settings.seed, memory_mb=settings.ab.memory_mb)


def select_requests(con: duckdb.DuckDBPyConnection, since: pd.Timestamp | None, until: pd.Timestamp | None,
                    after: pd.Timestamp | None) -> tuple[dict[str, int], pd.Timestamp | None]:
    """Table `win_read` (the rows read) and view `win` (the window's rows) from view `raw_requests`, and their
    counts: read, unreadable stamps, new (after the watermark `after`), blank texts, duplicates, the window's
    rows; with the newest stamp read (None when nothing was)."""
    bounds = [f"ts >= {logscan.moment(since)}"] * (since is not None) + [f"ts <= {logscan.moment(until)}"] * (
        until is not None)
    span = " AND ".join(bounds) or "true"
    new = f"ts > {logscan.moment(after)}" if after is not None else "true"
    con.execute(f"""CREATE OR REPLACE TABLE win_read AS SELECT ts, ord, request_id, ticket_id, customer_id,
        topic AS served_topic, text, ts IS NOT NULL AND {new} AS new, regexp_full_match(text, '{BLANK}') AS blank
        FROM raw_requests WHERE ts IS NULL OR ({span})""")
    con.execute("CREATE OR REPLACE TABLE win_dropped AS "
                + logscan.later_duplicates("win_read", "rowid AS rid", "new AND NOT blank", TIES))
    con.execute("""CREATE OR REPLACE TEMP VIEW win AS SELECT r.rowid AS rid, r.* EXCLUDE (new, blank)
        FROM win_read r ANTI JOIN win_dropped d ON r.rowid = d.rid WHERE r.new AND NOT r.blank""")
    read, unreadable, newest, fresh, blank = con.execute("""SELECT count(ts), count(*) - count(ts), max(ts),
        coalesce(count_if(new), 0), coalesce(count_if(new AND blank), 0) FROM win_read""").fetchone()
    duplicates = con.execute("SELECT count(*) FROM win_dropped").fetchone()[0]
    counts = {"requests_read": int(read), "requests_unreadable": int(unreadable), "requests_new": int(fresh),
              "requests_empty_text": int(blank), "requests_duplicate": int(duplicates),
              "router_rows": int(fresh) - int(blank) - int(duplicates)}
    return counts, None if newest is None else pd.Timestamp(newest).tz_convert("UTC")


def select_feedback(con: duckdb.DuckDBPyConnection, since: pd.Timestamp | None) -> tuple[pd.DataFrame, int]:
    """The feedback rows stamped from `since` on, oldest first (ties in a fixed order: logscan's `ord`, then the
    row), as `ticket_ab.requestlog.read_feedback` gives them, and how many of the days' rows had an unreadable
    stamp."""
    span = f"ts >= {logscan.moment(since)}" if since is not None else "true"
    con.execute(f"""CREATE OR REPLACE TABLE win_feedback AS SELECT ts, ord, request_id, label, source, priority
        FROM raw_feedback WHERE ts IS NULL OR ({span})""")
    unreadable = con.execute("SELECT count(*) FROM win_feedback WHERE ts IS NULL").fetchone()[0]
    rows = con.execute("""SELECT ts AS "timestamp", request_id, label, source, priority FROM win_feedback
        WHERE ts IS NOT NULL ORDER BY ts, ord, label, source, priority""").df()
    return rows.astype({"timestamp": "datetime64[ns, UTC]"}), int(unreadable)


def feedback_requests(con: duckdb.DuckDBPyConnection, request_ids: pd.Series) -> tuple[set[str], set[str]]:
    """Which of the feedback's request ids were read (known to the request log) and which are in the window:
    the only part of the window's millions of ids the feedback guards need."""
    ids = pd.DataFrame({"request_id": pd.unique(request_ids.fillna("").astype(str))})
    con.register("win_fb_ids", ids)
    try:
        known = con.execute("""SELECT DISTINCT request_id FROM win_read JOIN win_fb_ids USING (request_id)
            WHERE ts IS NOT NULL""").fetchall()
        inside = con.execute("SELECT DISTINCT request_id FROM win JOIN win_fb_ids USING (request_id)").fetchall()
    finally:
        con.unregister("win_fb_ids")
    return {row[0] for row in known}, {row[0] for row in inside}


def kept_rows(con: duckdb.DuckDBPyConnection, labels: pd.DataFrame, sample: Sampling) -> pd.DataFrame:
    """The window's rows the run keeps, in time order: every one with a label or a priority label (`labels`:
    request_id, label, source, priority, '' where none) and the drift sample (`drift_sample` True), with their labels
    joined (`label`, `label_priority`: NULL where none)."""
    con.register(LABELS, labels[["request_id", "label", "source", "priority"]].astype(str))
    try:
        con.execute(f"""CREATE OR REPLACE TABLE win_sample AS SELECT rid FROM win
            ORDER BY md5($seed || ':' || request_id), {TIES} LIMIT {int(sample.rows)}""", {"seed": str(sample.seed)})
        rows = con.execute(f"""SELECT w.request_id, w.ticket_id, w.customer_id, w.ts AS "timestamp", w.text,
            w.served_topic, nullif(l.label, '') AS label, l.source AS label_source,
            nullif(l.priority, '') AS label_priority, s.rid IS NOT NULL AS drift_sample
            FROM win w LEFT JOIN {LABELS} l ON w.request_id = l.request_id LEFT JOIN win_sample s ON w.rid = s.rid
            WHERE l.request_id IS NOT NULL OR s.rid IS NOT NULL ORDER BY {TIES}""").df()
    finally:
        con.unregister(LABELS)
    return rows.astype({"timestamp": "datetime64[ns, UTC]"})
