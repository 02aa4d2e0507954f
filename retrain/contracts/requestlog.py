"""The router's CSV logs as data: column contracts and a reader that survives bad rows.

The router appends; the DAG, analysis.py and the tests read. Each row is one physical line (the
router folds newlines in ticket text), so a torn or hand-edited line costs exactly one row, which
the reader counts and skips instead of failing the whole file. Feedback joins requests by one rule,
`latest_labels`, so the retraining window and the A/B report count the same labels.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REQUEST_COLUMNS = (
    "timestamp",  # UTC ISO 8601
    "request_id",
    "ticket_id",
    "customer_id",
    "variant",  # A (champion) | B (challenger)
    "model_alias",
    "model_version",
    "split_b",  # configured share of B when the request was served
    "mode",  # split | shadow
    "topic",  # the answer served
    "confidence",
    "latency_ms",
    "fallback",  # why the challenger's answer was not served (empty when it was, or not asked)
    "shadow_version",  # shadow mode: the other model's version, topic and confidence
    "shadow_topic",
    "shadow_confidence",
    "text",  # PII-masked ticket text, whitespace folded to one line
)
FEEDBACK_COLUMNS = ("timestamp", "request_id", "label", "source")
NUMERIC = ("split_b", "confidence", "latency_ms", "shadow_confidence")


@dataclass
class LogRead:
    rows: pd.DataFrame
    malformed: int  # lines that were not a complete row of the expected shape
    files: list[Path]


def log_files(path: str | Path, stem: str) -> list[Path]:
    """A file, or every `stem*.csv` in a directory (rotated files included), oldest name first."""
    path = Path(path)
    if path.is_dir():
        return sorted(path.glob(f"{stem}*.csv"))
    return [path] if path.exists() else []


def read_log(path: str | Path, columns: tuple[str, ...], stem: str) -> LogRead:
    """Read every complete row; count the rest. A missing file is an empty log, not an error."""
    files = log_files(path, stem)
    records: list[list[str]] = []
    malformed = 0
    for file in files:
        with open(file, newline="", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh):
                if not line.endswith("\n"):
                    malformed += 1  # a write cut short: no newline yet
                    continue
                try:
                    fields = next(csv.reader(io.StringIO(line)))
                except (csv.Error, StopIteration):
                    malformed += 1
                    continue
                if lineno == 0 and tuple(fields) == columns:
                    continue
                if len(fields) != len(columns):
                    malformed += 1
                    continue
                records.append(fields)
    frame = pd.DataFrame(records, columns=list(columns))
    for column in NUMERIC:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if "timestamp" in frame.columns:
        stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="ISO8601")
        bad = stamps.isna()
        malformed += int(bad.sum())
        frame = frame.loc[~bad].assign(timestamp=stamps[~bad]).reset_index(drop=True)
    return LogRead(frame, malformed, files)


def read_requests(path: str | Path) -> LogRead:
    return read_log(path, REQUEST_COLUMNS, "ab_logs")


def read_feedback(path: str | Path) -> LogRead:
    return read_log(path, FEEDBACK_COLUMNS, "feedback")


def latest_labels(feedback: pd.DataFrame, known_request_ids: Collection[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The label each known request ends up with, and how many feedback rows did not count.

    Agents correct themselves, so the last label per request_id wins (by timestamp, then log
    order). Feedback for a request_id the request log does not have cannot be checked against what
    was served, so it is dropped (a rotated-away log, another router, or made-up ids); rows without
    a label or a request_id are dropped as blank. Returns the surviving rows (`FEEDBACK_COLUMNS`,
    label and source stripped of spaces) and the counts `blank`, `unknown_request` and `superseded`.
    """
    fb = feedback.loc[:, list(FEEDBACK_COLUMNS)].reset_index(drop=True)
    fb["request_id"] = fb["request_id"].fillna("").astype(str)
    for column in ("label", "source"):
        fb[column] = fb[column].fillna("").astype(str).str.strip()
    blank = fb["label"].eq("") | fb["request_id"].eq("")
    known = fb["request_id"].isin(known_request_ids) & ~blank
    ordered = fb.loc[known].sort_values("timestamp", kind="stable")
    last = ordered.drop_duplicates("request_id", keep="last").reset_index(drop=True)
    counts = {"blank": int(blank.sum()), "unknown_request": int((~blank & ~known).sum()),
              "superseded": int(len(ordered) - len(last))}
    return last, counts
