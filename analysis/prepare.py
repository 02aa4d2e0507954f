"""The window prepared in DuckDB: every request cleaned, its models in service and period named, its label joined.

The definitions are `analysis.experiment`'s (read its docstring); this module carries them out in SQL
so a window of tens of millions of requests is read out of core and only aggregates reach pandas:

- requests are taken from `since` on, in time order (ties: log order), one row per request id (a
  client retry logs a request twice: the first row counts);
- a row's assignment unit is its customer, else its ticket, else the request;
- a row's champion is the version the champion last answered with at or before it (before its first
  answer: that first one), its challenger the version the challenger last answered with (shadow rows
  carry it), given the champion-only rows just before a new challenger's first answer when that run is
  short enough to be chance at the split (`LEAD_IN_P`), and none when it equals the champion;
- a row's period is its mode, split (split mode), champion and challenger;
- its label is the last feedback for its request id (by time, then log order), blank rows not counted; its
  priority label, separately, the last feedback with a priority (`analysis.priority`).

The "last version at or before" runs are computed per minute of traffic: a minute
whose rows see one version that the previous minutes already saw keeps it for every row, and only the few
minutes where a version changes are worked out row by row, so no sort of the whole window is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ticket_ab import logscan
from ticket_ab.names import SHADOW, SPLIT
from ticket_ab.requestlog import ANONYMOUS
from ticket_ab.schema import PRIORITIES

SHADOW_SHARE = 0.9  # how reliably a shadow row carries the challenger's answer, for the lead-in rule
LEAD_IN_P = 0.001  # champion-only rows before a challenger's first answer: longer than chance -> not its test
ORDER = "ts, ord"  # time order; `ord` breaks ties in log order (see `ticket_ab.logscan`)
_SPACE = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"  # what Python's str.strip() strips (ASCII)
UNREADABLE_FEEDBACK = "SELECT count(*) FROM raw_feedback WHERE ts IS NULL"  # feedback rows whose stamp did not read
# `w`'s `priority_code` packs a request's priority label and the priorities answered (`priority`, `shadow_priority`:
# '' from a one-head version) into one small number, NULL without a label: each part is a code, a priority's
# position in PRIORITIES + 1, NONE for none answered, OTHER_ANSWER / OTHER_LABEL for a value outside them (an unknown
# answer never equals an unknown label). `PRIORITY_PARTS` unpacks it in SQL. The strings themselves, two columns
# more in `req_typed` and three in `w`, cost the preparation about 0.45 s of CPU per million requests, the codes
# about 0.2 (measured on bench/window_gen.py's 1M window with priorities).
NONE, OTHER_ANSWER, OTHER_LABEL = 0, len(PRIORITIES) + 1, len(PRIORITIES) + 2
PRIORITY_CODES = {p: i for i, p in enumerate(PRIORITIES, start=1)}  # each priority's code in `priority_code`
_CODES = OTHER_LABEL + 1
PRIORITY_PARTS = {"label": f"(priority_code // {_CODES ** 2})", "priority": f"(priority_code // {_CODES} % {_CODES})",
                  "shadow_priority": f"(priority_code % {_CODES})"}


@dataclass
class Prepared:
    """The connection holding table `w` (the window: one row per request, cleaned, with `champion`,
    `challenger`, `period`, `label`, `source`; `request_id` and the logged `champion_confidence` only on labelled
    rows, the only ones that need them, as a window's ids cost more to store than the rest of its columns; the
    `priority_code` only on the rows with a priority label) and the counts of what was set aside."""

    con: duckdb.DuckDBPyConnection
    counts: dict[str, int] = field(default_factory=dict)
    limits_mb: tuple[int, int] | None = None  # (the cap, the lowered one) once `lower` lowered it
    categories: dict[str, pd.Index] = field(default_factory=dict)  # a coded column's values, by code (`traffic`)

    def lower(self, cap_mb: int, lowered_mb: int) -> None:
        """Let DuckDB hold `lowered_mb` from now on instead of `cap_mb` (it lets go of the rest of its buffers), except
        inside `whole`."""
        self.limits_mb = (cap_mb, lowered_mb)
        self._limit(lowered_mb)

    @contextmanager
    def whole(self) -> Iterator[None]:
        """The whole cap for a query that holds every value it reads (an exact quantile of an arm's latencies), then
        the lowered one again."""
        if self.limits_mb is None:
            yield
            return
        self._limit(self.limits_mb[0])
        try:
            yield
        finally:
            self._limit(self.limits_mb[1])

    def _limit(self, memory_mb: int) -> None:
        self.con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")

    def frame(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """A (small) query result as a frame."""
        return self.con.execute(sql, params or []).df()

    def value(self, sql: str, params: list[Any] | None = None) -> Any:
        return self.con.execute(sql, params or []).fetchone()[0]


def prepare(con: duckdb.DuckDBPyConnection, since: pd.Timestamp | None) -> Prepared:
    """Table `w` from the views `raw_requests` and `raw_feedback` (`ticket_ab.logscan`), from `since` on: their
    rows typed here (tables `fb` and `req_typed`), then `from_typed`."""
    con.execute(f"CREATE OR REPLACE TABLE fb AS {typed_feedback(since)}")
    con.execute(f"CREATE OR REPLACE TABLE req_typed AS {typed_requests(since)}")
    con.execute("CHECKPOINT")
    return from_typed(con, int(con.execute(UNREADABLE_FEEDBACK).fetchone()[0]))


def typed_requests(since: pd.Timestamp | None) -> str:
    """The SELECT typing the request rows of view `raw_requests` from `since` on (and those with an unreadable
    stamp, counted and set aside later): the one definition of `req_typed`'s rows, whether they are typed here
    or by a cluster's day tasks (`analysis.scatter`)."""
    return f"""SELECT ts, ord, request_id,
        CASE WHEN customer_id <> '' THEN customer_id WHEN ticket_id <> '' THEN ticket_id ELSE request_id END AS unit,
        variant, model_version, shadow_version, shadow_topic, topic, fallback,
        CASE WHEN mode IN ('{SPLIT}', '{SHADOW}') THEN mode ELSE '{SPLIT}' END AS mode,
        round(try_cast(split_b AS DOUBLE), 6) AS split_b, try_cast(latency_ms AS DOUBLE) AS latency_ms,
        CASE WHEN integration <> '' THEN integration ELSE '{ANONYMOUS}' END AS integration,
        (variant = 'B' AND fallback = '' AND topic <> '') AS by_ch, epoch_ms(ts) // 60000 AS minute,
        try_cast(nullif(champion_confidence, '') AS DOUBLE) AS champion_confidence,
        CAST({_code('priority', OTHER_ANSWER)} * {_CODES} + {_code('shadow_priority', OTHER_ANSWER)} AS UTINYINT)
            AS priorities_answered
        FROM raw_requests WHERE {_window(since)}"""


def typed_feedback(since: pd.Timestamp | None) -> str:
    """The SELECT typing the feedback rows of view `raw_feedback` from `since` on (those with a readable stamp):
    the one definition of `fb`'s rows, as `typed_requests` is of `req_typed`'s."""
    return f"""SELECT ts, ord, request_id, trim(label, {_SPACE}) AS label, trim(source, {_SPACE}) AS source,
        trim(priority, {_SPACE}) AS priority FROM raw_feedback WHERE ts IS NOT NULL AND ({_window(since)})"""


def _window(since: pd.Timestamp | None) -> str:
    return "ts IS NULL" + (f" OR ts >= {logscan.moment(since)}" if since is not None else " OR true")


def from_typed(con: duckdb.DuckDBPyConnection, unreadable_feedback: int) -> Prepared:
    """Table `w` from the typed rows in `req_typed` and `fb` (tables or views: made by `prepare`, or over the
    Parquet files of a cluster's day tasks) and the count of feedback rows whose stamp did not read (the one
    count of raw rows the typed rows do not keep)."""
    prepared = Prepared(con)
    _labels(prepared)
    prepared.counts["unreadable_feedback_stamps"] = unreadable_feedback
    prepared.counts["unreadable_stamps"] = int(prepared.value("SELECT count(*) FROM req_typed WHERE ts IS NULL"))
    con.execute("CREATE OR REPLACE TABLE dropped AS "
                + logscan.later_duplicates("req_typed", "ts, ord", "ts IS NOT NULL", ORDER))
    con.execute("""CREATE OR REPLACE TEMP VIEW req_kept AS SELECT * FROM req_typed ANTI JOIN dropped USING (ts, ord)
                   WHERE ts IS NOT NULL""")
    # Each label's request by its (ts, ord), a narrow join of its own: joined on the request id while `w` is written,
    # the label table's hash of 3.3M ids had `w`'s writing spill (13 s instead of 9 at 10M requests). The priority
    # labels join in the same pass, packed with the priorities answered (`priority_code`).
    con.execute(f"""CREATE OR REPLACE TABLE lab_at AS SELECT r.ts, r.ord, l.label, l.source, l.n,
        CASE WHEN l.priority_label IS NOT NULL THEN CAST({_code('l.priority_label', OTHER_LABEL)} * {_CODES ** 2}
            + r.priorities_answered AS USMALLINT) END AS priority_code
        FROM (SELECT ts, ord, request_id, priorities_answered FROM req_kept) r JOIN lab l USING (request_id)""")
    exact, lead, buckets = _versions(prepared)
    con.register("bucket_versions", buckets)
    joins = {"e": exact, "li": lead}
    for alias, frame in joins.items():
        if len(frame):
            con.register(f"versions_{alias}", frame)
    champion = "coalesce(e.champion, b.champion)" if len(exact) else "b.champion"
    present = [a for a, f in reversed(joins.items()) if len(f)]
    challenger = "coalesce(" + "".join(f"{a}.challenger, " for a in present) + "b.challenger)"
    extra = " ".join(f"LEFT JOIN versions_{a} {a} USING (ts, ord)" for a, f in joins.items() if len(f))
    con.execute(f"""CREATE OR REPLACE TABLE w AS SELECT *,
        mode || ':' || CASE WHEN mode = '{SPLIT}' THEN coalesce(CAST(split_b AS VARCHAR), '') ELSE '' END
            || ':A' || champion || ':B' || challenger AS period FROM (
        SELECT * EXCLUDE (challenger), CASE WHEN challenger = champion THEN '' ELSE challenger END AS challenger FROM (
        SELECT r.* EXCLUDE (minute, by_ch, request_id, champion_confidence, priorities_answered),
            CASE WHEN l.label IS NOT NULL THEN request_id END AS request_id,
            CASE WHEN l.label IS NOT NULL AND isfinite(r.champion_confidence) THEN r.champion_confidence END
                AS champion_confidence,  -- nan or inf: not logged
            CAST({champion} AS VARCHAR) AS champion, CAST({challenger} AS VARCHAR) AS challenger, l.label, l.source,
            l.n AS label_rows, l.priority_code
        FROM req_kept r JOIN bucket_versions b USING (minute) {extra} LEFT JOIN lab_at l USING (ts, ord)))""")
    for name in ("bucket_versions", *(f"versions_{a}" for a, f in joins.items() if len(f))):
        con.unregister(name)
    con.execute("DROP TABLE lab_at")
    con.execute("CHECKPOINT")
    _counts(prepared)
    return prepared


def _code(column: str, other: int) -> str:
    """A priority column's code in `priority_code` (SQL; `other` for a value outside PRIORITIES)."""
    known = " ".join(f"WHEN '{p}' THEN {i}" for p, i in PRIORITY_CODES.items())
    return f"CASE {column} WHEN '' THEN {NONE} {known} ELSE {other} END"


def _labels(prepared: Prepared) -> None:
    """Table `lab`: each request id's last non-blank label and its source (and how many label rows it had), and,
    separately, its last non-blank priority (`priority_label`: the rule of `ticket_ab.requestlog.latest_labels`).
    Most ids have one row, which is its own answer: only the ids with more are ranked (at 3.3M labels, 1.4 s instead
    of 3.2). A row correcting only the priority is no topic label (its id's `label` is NULL where no other row gives
    one, its `n` 0, so every topic figure ignores it) and not blank either: it is counted as `priority_only`, in the
    same scan as the rows and the blank ones. One table for both (not a second one of priorities joined to it):
    at 10M requests a second table of 3.3M ids and its join would cost the memory the report has not got."""
    con = prepared.con
    con.execute(f"""CREATE OR REPLACE TABLE lab AS
        WITH given AS (SELECT * FROM fb WHERE (label <> '' OR priority <> '') AND request_id <> ''),
             many AS (SELECT request_id FROM given GROUP BY request_id HAVING count(*) > 1)
        SELECT request_id, nullif(label, '') AS label, CASE WHEN label <> '' THEN source END AS source,
            CAST(label <> '' AS INTEGER) AS n, nullif(priority, '') AS priority_label
        FROM given ANTI JOIN many USING (request_id)
        UNION ALL SELECT request_id, arg_max(label, ({ORDER})) FILTER (label <> ''),
            arg_max(source, ({ORDER})) FILTER (label <> ''), count(*) FILTER (label <> ''),
            arg_max(priority, ({ORDER})) FILTER (priority <> '')
        FROM given SEMI JOIN many USING (request_id) GROUP BY request_id""")
    rows, blank, priority_only = con.execute("""SELECT count(*),
        count(*) FILTER ((label = '' AND priority = '') OR request_id = ''),
        count(*) FILTER (label = '' AND priority <> '' AND request_id <> '') FROM fb""").fetchone()
    prepared.counts |= {"feedback_rows": int(rows), "blank": int(blank), "priority_only": int(priority_only)}


def _counts(prepared: Prepared) -> None:
    """Where feedback went: matched to a request (its superseded rows), or unknown (no such request read)."""
    matched, labelled_rows = prepared.con.execute(
        "SELECT count(label), coalesce(sum(label_rows), 0) FROM w").fetchone()
    total = int(prepared.value("SELECT coalesce(sum(n), 0) FROM lab"))
    prepared.counts |= {"superseded": int(labelled_rows) - int(matched), "unknown_request": total - int(labelled_rows),
                        "requests": int(prepared.value("SELECT count(*) FROM w"))}


def _versions(prepared: Prepared) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Row by row for the minutes in which a version changes (keyed by ts and ord), the lead-in rows' challenger,
    and each other minute's champion and challenger."""
    buckets = prepared.frame(f"""SELECT minute,
        count(DISTINCT cand) AS nc, arg_min(cand, ({ORDER})) AS first_c, arg_max(cand, ({ORDER})) AS last_c,
        count(DISTINCT seen) AS ns, arg_min(seen, ({ORDER})) AS first_s, arg_max(seen, ({ORDER})) AS last_s
        FROM (SELECT minute, ts, ord, CASE WHEN NOT by_ch AND model_version <> '' THEN model_version END AS cand,
                     nullif(CASE WHEN by_ch THEN model_version ELSE shadow_version END, '') AS seen FROM req_kept)
        GROUP BY minute ORDER BY minute""")
    carried_c = buckets["last_c"].ffill().shift()
    carried_s = buckets["last_s"].ffill().shift()
    first_any = buckets["first_c"].dropna()
    bfill = first_any.iloc[0] if len(first_any) else ""
    change = ((buckets["nc"] >= 2) | ((buckets["nc"] == 1) & carried_c.notna() & (buckets["first_c"] != carried_c))
              | (buckets["ns"] >= 2) | ((buckets["ns"] == 1) & (buckets["first_s"] != carried_s.fillna(""))))
    values = pd.DataFrame({"minute": buckets["minute"], "champion": carried_c.fillna(bfill).astype(str),
                           "challenger": carried_s.fillna("").astype(str)})
    exact = _exact_rows(prepared, buckets.loc[change, "minute"].tolist(), carried_c[change], carried_s[change], bfill)
    lead = _lead_in(prepared, exact, dict(zip(buckets["minute"], carried_s.fillna(""), strict=True)))
    return exact.drop(columns=["minute", "by_ch"]), lead, values


def _exact_rows(prepared: Prepared, minutes: list[int], carried_c: pd.Series, carried_s: pd.Series,
                bfill: str) -> pd.DataFrame:
    """Row by row, the minutes in which a version changes: the last version seen, from the one carried in."""
    columns = ["ts", "ord", "minute", "by_ch", "champion", "challenger"]
    if not minutes:
        return pd.DataFrame(columns=columns)
    prepared.con.register("change_minutes", pd.DataFrame({"minute": minutes}))
    rows = prepared.frame(f"""SELECT ts, ord, minute, by_ch,
        CASE WHEN NOT by_ch AND model_version <> '' THEN model_version END AS cand,
        nullif(CASE WHEN by_ch THEN model_version ELSE shadow_version END, '') AS seen
        FROM req_kept SEMI JOIN change_minutes USING (minute) ORDER BY {ORDER}""")
    prepared.con.unregister("change_minutes")
    start_c = dict(zip(minutes, carried_c, strict=True))
    start_s = dict(zip(minutes, carried_s, strict=True))
    first = rows.groupby("minute").cumcount() == 0
    rows["cand"] = rows["cand"].where(rows["cand"].notna() | ~first, rows["minute"].map(start_c))
    rows["seen"] = rows["seen"].where(rows["seen"].notna() | ~first, rows["minute"].map(start_s))
    champion = rows.groupby("minute")["cand"].ffill()
    later = champion.isna()  # before any champion answer in the window: the first one's version
    rows["champion"] = champion.where(~later, rows.groupby("minute")["cand"].bfill()).fillna(bfill)
    rows["challenger"] = rows.groupby("minute")["seen"].ffill().fillna("")
    return rows[columns]


def _lead_in(prepared: Prepared, exact: pd.DataFrame, carried_s: dict[int, str]) -> pd.DataFrame:
    """The lead-in rows: a new challenger gets the champion-only rows just before its first answer when that
    run is shorter than chance at the share B was getting (LEAD_IN_P) would allow (`ts`, `ord`, `challenger`)."""
    found: dict[tuple[Any, Any], str] = {}
    if not exact.empty:
        previous = exact.groupby("minute")["challenger"].shift()
        previous = previous.where(previous.notna(), exact["minute"].map(carried_s)).fillna("")
        for first in exact[(exact["challenger"] != "") & (exact["challenger"] != previous)].itertuples(index=False):
            for key in _run_before(prepared, first):
                found[key] = first.challenger  # a later challenger's lead-in wins, as the rows are in order
    return pd.DataFrame({"ts": [k[0] for k in found], "ord": [k[1] for k in found], "challenger": list(found.values())})


def _run_before(prepared: Prepared, first: Any) -> list[tuple[Any, Any]]:
    """The keys of the unanswered rows just before `first`, when there are fewer than chance would allow."""
    share = prepared.value(f"SELECT CASE WHEN mode = '{SPLIT}' THEN split_b ELSE {SHADOW_SHARE} END FROM req_kept "
                           "WHERE ts = $ts AND ord = $ord", {"ts": first.ts, "ord": first.ord})
    p = float(share) if share is not None and not math.isnan(share) else 0.0
    longest = int(math.log(LEAD_IN_P) / math.log(1 - p)) if 0 < p < 1 else 0
    if not longest:
        return []
    before = prepared.frame(f"""SELECT ts, ord, by_ch FROM req_kept WHERE (ts, ord) < ($ts, $ord)
        ORDER BY ts DESC, ord DESC LIMIT {longest + 1}""", {"ts": first.ts, "ord": first.ord})
    answered = np.flatnonzero(before["by_ch"].to_numpy())
    run = int(answered[0]) if len(answered) else len(before)
    return list(zip(before["ts"][:run], before["ord"][:run], strict=True)) if 0 < run <= longest else []
