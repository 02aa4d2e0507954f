"""Test helper: a five-day log root as the router, its clients and compaction leave it, with every kind of row
the preparation counts or sets aside, so the two ways of preparing a window (in one process, or day by day on
a cluster: `analysis.scatter`) are compared on all of them.

- 6,000 requests of 300 customers, one a minute from 2026-11-24 09:00 UTC to 2026-11-28 13:00, in two ramp steps
  (split 0.2, then 0.5), with fallbacks and labels from two feedback sources;
- the three closed days (24-26) compacted into Parquet day files by `ticket_ab.compact`, one of them with a torn
  line its day file keeps the head of; the two open days (27, 28) as CSV shards, each log with a torn last line
  and a checksummed row whose stamp does not parse;
- client retries (a request id logged twice, the second a few seconds later), a label corrected later, feedback
  for a request the log does not have, and a blank label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
from experiment_logs import LogSpec, Phase, write_ab_logs
from logfiles import append_lines, append_rows

from ticket_ab.compact import compact_closed
from ticket_ab.logstore import FEEDBACK, REQUESTS, csv_shards, partition_dir
from ticket_ab.logwriter import encode_line
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS

START = datetime.fromisoformat("2026-11-24T09:00:00+00:00")
STEP_S = 60.0
TODAY = date(2026, 11, 28)  # compaction's today: the 24th to the 26th are closed, the 27th and 28th open
CLOSED, OPEN = [date(2026, 11, d) for d in (24, 25, 26)], [date(2026, 11, d) for d in (27, 28)]
RETRIED = (150, 2900, 4400, 5800)  # request indices a client sent twice (days 24, 26, 27, 28)


@dataclass(frozen=True)
class TornWindow:
    root: Path
    days: list[date]
    since: pd.Timestamp  # a moment inside the first closed day: the rows and heads before it do not count


def _stamp(index: int, later_s: float = 0.0) -> str:
    return (START + timedelta(seconds=index * STEP_S + later_s)).isoformat(timespec="milliseconds")


def write_torn_window(directory: Path) -> TornWindow:
    spec = LogSpec(phases=[Phase(2500, split_b=0.2), Phase(3500, split_b=0.5)], customers=300, step_s=STEP_S,
                   start=START.isoformat(), fallback_rate=0.01, seed=3,
                   feedback_sources=(("zendesk", 0.6), ("jira-sm", 0.4)))
    root = write_ab_logs(directory, spec)
    retries = [dict.fromkeys(REQUEST_COLUMNS, "") | {
        "timestamp": _stamp(i, 4.0), "request_id": f"r{i:06d}", "customer_id": "C-00001", "variant": "A",
        "model_alias": "champion", "model_version": "3", "topic": "network", "split_b": "0.5", "mode": "split",
        "latency_ms": "9.5", "text": f"retry of ticket {i}"} for i in RETRIED]
    append_rows(root, REQUEST_COLUMNS, retries)
    append_rows(root, FEEDBACK_COLUMNS, [
        {"timestamp": _stamp(2000, 900.0), "request_id": "r002000", "label": "billing", "source": "zendesk"},
        {"timestamp": _stamp(5000, 900.0), "request_id": "r005000", "label": "network", "source": "jira-sm"},
        {"timestamp": _stamp(5100, 60.0), "request_id": "r999999", "label": "access", "source": "zendesk"},
        {"timestamp": _stamp(5200, 60.0), "request_id": "r005200", "label": " ", "source": "zendesk"},
    ])
    _unreadable(root, REQUESTS, OPEN[1], REQUEST_COLUMNS, {"request_id": "r-no-stamp", "variant": "A"})
    _unreadable(root, FEEDBACK, OPEN[0], FEEDBACK_COLUMNS, {"request_id": "r004100", "label": "email"})
    _tear(root, REQUESTS, CLOSED[1], "2026-11-25T10:00:00.000+00:00,r-torn-closed,C-0")  # torn lines last: a
    _tear(root, REQUESTS, OPEN[1], "2026-11-28T12:00:00.000+00:00,r-torn-open,C-00")  # line appended after one
    _tear(root, FEEDBACK, OPEN[0], "2026-11-27T10:00:00.000+00:00,r004000,netw")  # would be glued to it
    run = compact_closed(root, TODAY)
    assert not run.failed and {d.day for d in run.days} == set(CLOSED), run
    return TornWindow(root, CLOSED + OPEN, pd.Timestamp("2026-11-24T15:00:00+00:00"))


def _tear(root: Path, kind: str, day: date, head: str) -> None:
    """A line cut short at the end of the day's first shard, as a crash mid-write leaves it."""
    append_lines(csv_shards(partition_dir(root, kind, day), kind)[0], head)


def _unreadable(root: Path, kind: str, day: date, columns: tuple[str, ...], row: dict[str, str]) -> None:
    """A whole, checksummed row whose stamp is not a time (a hand edit), in the day's last shard."""
    line = encode_line(columns, {"timestamp": "yesterday noon"} | row).decode()
    append_lines(csv_shards(partition_dir(root, kind, day), kind)[-1], line)
