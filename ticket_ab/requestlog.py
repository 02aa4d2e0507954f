"""The router's CSV logs as data: column contracts and the one reader, which survives bad rows.

The router appends (`ticket_ab.logwriter`, one file per writer under a folder per UTC day,
see `ticket_ab.logstore`); the DAG, analysis.py and the tests read through `read_requests`
and `read_feedback`. A read opens only the day folders a time range overlaps, so it costs the
window, not the history. Every row carries a checksum, so a torn or hand-edited line costs exactly
that row: the reader counts and skips it instead of failing the file or misreading the row.
A closed day compacted into one Parquet file (`ticket_ab.compact`) reads as the same rows.
Feedback joins requests by one rule, `latest_labels`, so the retraining window and the A/B report
count the same labels.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ticket_ab.dayfile import read_day_file
from ticket_ab.logstore import COMPACTED_SUFFIX, FEEDBACK, REQUESTS, day_files, partitions
from ticket_ab.logwriter import CRC, verify
from ticket_ab.objectstore import LogPath, open_file

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
    "experiment_id",  # the shared experiment config in effect (changes with split, mode or a model)
    "topic",  # the answer served
    "confidence",
    "latency_ms",
    "fallback",  # why the challenger's answer was not served (empty when it was, or not asked)
    "shadow_version",  # shadow mode: the other model's version, topic and confidence
    "shadow_topic",
    "shadow_confidence",
    "champion_confidence",  # the champion's top probability (CUPAC covariate); empty if not scored or in older files
    "integration",  # whose client token the request carried, or `anonymous` (empty in files written before it)
    "priority",  # the priority served; empty for a one-head version (topic only) and in older files
    "priority_confidence",
    "shadow_priority",  # shadow mode: the other model's priority (empty as `priority` is)
    "text",  # PII-masked ticket text, whitespace folded to one line
)
# `label` the true topic, `priority` the true priority: either may be empty (a correction of the other; older
# files have no `priority`), never both.
FEEDBACK_COLUMNS = ("timestamp", "request_id", "label", "source", "priority")
ANONYMOUS = "anonymous"  # the `integration` of a request that carried no client token
LABEL_COLUMNS = (*FEEDBACK_COLUMNS, "priority_source")  # `latest_labels`' rows: each field with its own source
LOG_COLUMNS = {REQUESTS: REQUEST_COLUMNS, FEEDBACK: FEEDBACK_COLUMNS}
NUMERIC = ("split_b", "confidence", "latency_ms", "shadow_confidence", "champion_confidence", "priority_confidence")
Moment = pd.Timestamp | datetime | str | None
_STAMP = len("2026-11-24T10:00:00.123+00:00")


@dataclass
class LogRead:
    rows: pd.DataFrame
    malformed: int  # lines that were not a complete row of the expected shape
    files: list[LogPath]


@dataclass
class DayRead:
    """One day folder's part of a read, before its rows are parsed and filtered."""

    frames: list[pd.DataFrame] = field(default_factory=list)  # the day file's rows (strings), if it has one
    groups: list[tuple[tuple[str, ...], list[bytes]]] = field(default_factory=list)  # each shard's header, rows
    dropped: list[bytes] = field(default_factory=list)  # heads of the lines that did not count (see _checked_lines)
    files: list[LogPath] = field(default_factory=list)  # the files read
    folded: set[str] = field(default_factory=set)  # shards the day file lists as folded into it
    vanished: bool = False  # a listed file was gone when it was opened


def read_requests(root: str | Path, since: Moment = None, until: Moment = None) -> LogRead:
    """Request rows stamped in [since, until] (None: open) from the log root `root`, oldest first."""
    return read_log(root, REQUESTS, REQUEST_COLUMNS, since, until)


def read_feedback(root: str | Path, since: Moment = None, until: Moment = None) -> LogRead:
    """Feedback rows stamped in [since, until] from the log root `root`, oldest first."""
    return read_log(root, FEEDBACK, FEEDBACK_COLUMNS, since, until)


def read_log(root: str | Path, kind: str, columns: tuple[str, ...], since: Moment = None,
             until: Moment = None) -> LogRead:
    """Read every whole row of the day folders overlapping [since, until]; count the rest.

    A missing root is an empty log, not an error. Each file's own header names its columns, so a
    column added later reads as empty in older files. Rows are returned in timestamp order (stable:
    one writer's rows keep their order), because several writers' files interleave in time. A
    compacted day (see `ticket_ab.dayfile`) reads as the same rows and malformed count its shards did.
    """
    since, until = _utc(since), _utc(until)
    first, last = _stamp_key(since, up=False), _stamp_key(until, up=True)
    days = [read_day(folder, kind, columns, first, last)
            for _, folder in partitions(root, kind, _day(since), _day(until))]
    frame, unparsed = string_rows(days, columns)
    malformed = unparsed + sum(len(day.dropped) for day in days)
    for column in NUMERIC:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    stamps = parse_stamps(frame["timestamp"])
    bad = stamps.isna()
    malformed += int(bad.sum())
    keep = ~bad & (stamps >= since if since is not None else True) & (stamps <= until if until is not None else True)
    frame = frame.loc[keep].assign(timestamp=stamps[keep])
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return LogRead(frame, malformed, [file for day in days for file in day.files])


def parse_stamps(stamps: pd.Series) -> pd.Series:
    """Timestamps as UTC moments; NaT where one is unreadable."""
    return pd.to_datetime(stamps, utc=True, errors="coerce", format="ISO8601")


def read_day(folder: LogPath, kind: str, columns: tuple[str, ...], first: bytes | None = None,
             last: bytes | None = None) -> DayRead:
    """One day folder's part of a read of [first, last] (router-format stamps, see `_stamp_key`).

    A file that vanishes while the day is read means compaction (or retention) changed the day
    meanwhile: the day is read again from a fresh listing, so the rows its shards held are read from
    the day file that replaced them instead of being lost to this read.
    """
    files = day_files(folder, kind)
    while True:
        day = _read_files(files, columns, first, last)
        fresh = day_files(folder, kind) if day.vanished else files
        if fresh == files:
            return day
        files = fresh


def _read_files(files: list[LogPath], columns: tuple[str, ...], first: bytes | None, last: bytes | None) -> DayRead:
    """Read a day's files: the day file first, then each shard it does not list as folded into it."""
    day = DayRead()
    for file in files:
        if file.name in day.folded:
            continue  # a leftover of a compaction cut short before it removed the shards
        try:
            if file.suffix == COMPACTED_SUFFIX:
                with open_file(file) as source:  # a local path or an object-store file
                    compacted = read_day_file(source, columns)
                day.folded |= compacted.shards
                day.frames.append(compacted.rows.loc[_considered(compacted.rows["timestamp"], first, last)])
                day.dropped += _lines(compacted.dropped, first, last)[0]
            else:
                names, bodies, dropped = _checked_lines(file, columns, first, last)
                day.groups.append((names, bodies))
                day.dropped += dropped
        except FileNotFoundError:
            day.vanished = True
            continue
        day.files.append(file)
    return day


def string_rows(days: list[DayRead], columns: tuple[str, ...]) -> tuple[pd.DataFrame, int]:
    """The days' rows as one frame of `columns` (strings, not yet sorted), and how many checked lines did not
    parse. Shards sharing a header are parsed together, in one pandas parse."""
    groups: dict[tuple[str, ...], list[bytes]] = {}
    for day in days:
        for names, bodies in day.groups:
            groups.setdefault(names, []).extend(bodies)
    frames, unparsed = [], 0
    for names, bodies in groups.items():
        parsed = _parse(bodies, names, columns)
        unparsed += len(bodies) - len(parsed)
        frames.append(parsed)
    frames += [frame for day in days for frame in day.frames]
    if not frames:
        return pd.DataFrame(columns=list(columns), dtype="object"), unparsed
    return pd.concat(frames, ignore_index=True), unparsed


def _utc(moment: Moment) -> pd.Timestamp | None:
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _day(moment: pd.Timestamp | None) -> date | None:
    return None if moment is None else moment.date()


def _stamp_key(moment: pd.Timestamp | None, *, up: bool) -> bytes | None:
    """`moment` as the router writes timestamps, rounded to the millisecond away from the range."""
    if moment is None:
        return None
    moment = moment.ceil("ms") if up else moment.floor("ms")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.").encode() + b"%03d+00:00" % (moment.microsecond // 1000)


def _lines(data: bytes, first: bytes | None, last: bytes | None) -> tuple[list[bytes], bool]:
    """The file's lines (without newlines) that may lie in [first, last], and whether it ends torn.

    Lines stamped in the router's format outside the range are dropped unparsed and unchecked (see
    `_outside`); any other line is kept for the full check. This is what keeps the first day of a
    range (mostly rows before `since`) cheap.
    """
    raw, starts, ends = _spans(data)
    torn = bool(len(data) and data[-1] != ord("\n"))
    keep = ~_outside(raw, starts, ends, first, last)
    return [data[a:b] for a, b in zip(starts[keep].tolist(), ends[keep].tolist(), strict=True)], torn


def _outside(raw: np.ndarray, starts: np.ndarray, ends: np.ndarray, first: bytes | None,
             last: bytes | None) -> np.ndarray:
    """Which lines are certainly outside [first, last]: those stamped in the router's format before or after it.

    The router's timestamps (`2026-11-24T10:00:00.123+00:00`, then a comma) sort as text in time
    order, so lines in that format are compared as bytes, all at once.
    """
    outside = np.zeros(len(ends), dtype=bool)
    if first is None and last is None:
        return outside
    long = np.flatnonzero(ends - starts > _STAMP)
    heads = raw[starts[long, None] + np.arange(_STAMP + 1)]
    ours = (heads[:, _STAMP] == ord(",")) & (heads[:, 10] == ord("T")) & (
        heads[:, 23:_STAMP] == np.frombuffer(b"+00:00", dtype=np.uint8)).all(axis=1)
    stamps = np.ascontiguousarray(heads[:, :_STAMP]).view(f"S{_STAMP}").ravel()
    beyond = np.zeros(len(long), dtype=bool)
    if first is not None:
        beyond |= stamps < first
    if last is not None:
        beyond |= stamps > last
    outside[long[ours & beyond]] = True
    return outside


def _considered(stamps: pd.Series, first: bytes | None, last: bytes | None) -> np.ndarray:
    """Which compacted rows a read of the shards would have looked at: `_outside` applied to their timestamps."""
    if first is None and last is None:
        return np.ones(len(stamps), dtype=bool)
    return ~_outside(*_spans("".join(f"{stamp},\n" for stamp in stamps).encode("utf-8", "replace")), first, last)


def _spans(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`data` as bytes, and where each of its newline-ended lines starts and ends (at its newline)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    return raw, np.concatenate(([0], ends + 1))[: len(ends)].astype(np.int64), ends


def _checked_lines(file: LogPath, columns: tuple[str, ...], first: bytes | None = None,
                   last: bytes | None = None) -> tuple[tuple[str, ...], list[bytes], list[bytes]]:
    """(the file's columns, the fields of each row whose checksum matches, the head of each line that did not).

    Blank lines are no rows (a writer's probe leaves them at most); a last line without its newline
    is a write cut short. A file without a readable header is read with the expected columns. Lines
    stamped outside [first, last] are skipped unchecked: they are not part of the read. A dropped
    line's head (its first bytes, enough for `_outside`) lets a compacted day count it like this read
    would; a torn end's head is empty: it counts in any range. Raises FileNotFoundError for a file
    removed since it was listed.
    """
    data = file.read_bytes()
    lines, torn = _lines(data, first, last)
    names = columns
    if lines and lines[0].endswith(b"," + CRC.encode()):
        names = tuple(lines[0].decode("utf-8", "replace").split(",")[:-1])
        lines = lines[1:]
    lines = [line for line in lines if line]
    bodies = [verify(line) for line in lines]
    good = [body for body in bodies if body is not None]
    dropped = [line[: _STAMP + 1] for line, body in zip(lines, bodies, strict=True) if body is None]
    return names, good, dropped + [b""] * torn


def _parse(bodies: list[bytes], names: tuple[str, ...], columns: tuple[str, ...]) -> pd.DataFrame:
    """Checked lines as a frame of `columns` (strings), in one pandas parse."""
    text = b"\n".join(bodies) + b"\n"
    try:
        frame = pd.read_csv(io.BytesIO(text), header=None, names=list(names), dtype=str, keep_default_na=False,
                            na_filter=False, encoding="utf-8", encoding_errors="replace", quoting=csv.QUOTE_MINIMAL)
    except pd.errors.ParserError:  # a checked line of another shape: only a hand edit with a new checksum
        rows = [fields for fields in csv.reader(io.StringIO(text.decode("utf-8", "replace")))
                if len(fields) == len(names)]
        frame = pd.DataFrame(rows, columns=list(names), dtype="object")
    return frame.reindex(columns=list(columns), fill_value="")


def latest_labels(feedback: pd.DataFrame, known_request_ids: Collection[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The labels each known request ends up with, and how many feedback rows did not count.

    Agents correct themselves, so the last label per request_id wins (by timestamp, then log
    order), and so, separately, does the last priority: a row may correct either or both, and a
    correction of one never erases an earlier one of the other. Feedback for a request_id the
    request log does not have cannot be checked against what was served, so it is dropped (a
    rotated-away log, another router, or made-up ids); rows without a request_id, or with neither a
    label nor a priority, are dropped as blank. Returns one row per request (`LABEL_COLUMNS`: its
    last label and that row's source, its last priority and that row's source, '' where it has none;
    the newer of the two stamps; stripped of spaces) and the counts `blank`, `unknown_request` and
    `superseded` (label rows a later label replaced: the topic figures, the same with or without priorities).
    """
    fb = feedback.reindex(columns=list(FEEDBACK_COLUMNS)).reset_index(drop=True)  # older frames: no `priority`
    fb["request_id"] = fb["request_id"].fillna("").astype(str)
    for column in ("label", "source", "priority"):
        fb[column] = _stripped(fb[column])
    blank = (fb["label"].eq("") & fb["priority"].eq("")) | fb["request_id"].eq("")
    known = fb["request_id"].isin(known_request_ids) & ~blank
    ordered = fb.loc[known].sort_values("timestamp", kind="stable").reset_index(drop=True)
    codes = pd.factorize(ordered["request_id"])[0]
    topics = ordered["label"].ne("").to_numpy()
    topic_at, priority_at = _last_rows(codes, topics), _last_rows(codes, ordered["priority"].ne("").to_numpy())
    counts = {"blank": int(blank.sum()), "unknown_request": int((~blank & ~known).sum()),
              "superseded": int(topics.sum() - (topic_at >= 0).sum())}
    return _joined(ordered, topic_at, priority_at), counts


def _stripped(values: pd.Series) -> pd.Series:
    """Text stripped of spaces, '' where missing: each distinct value once (labels, sources and priorities are few)."""
    codes, uniques = pd.factorize(values.fillna("").astype(str))
    stripped = np.array([value.strip() for value in uniques] + [""], dtype=object)
    return pd.Series(stripped[codes], index=values.index, dtype=object)


def _last_rows(codes: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per request (its code), the position of its last row among those `given` (-1: none)."""
    last = np.full(int(codes.max()) + 1 if len(codes) else 0, -1, dtype=np.int64)
    positions = np.flatnonzero(given)[::-1]
    found, first = np.unique(codes[positions], return_index=True)  # the first from the end: the last
    last[found] = positions[first]
    return last


def _joined(ordered: pd.DataFrame, topic_at: np.ndarray, priority_at: np.ndarray) -> pd.DataFrame:
    """One `LABEL_COLUMNS` row per request from its last label row and its last priority row, in the order of the
    later of the two (time, then log order), stamped with it."""
    latest = np.maximum(topic_at, priority_at)  # every known request has one or the other
    order = np.argsort(latest, kind="stable")
    t, p, at = topic_at[order], priority_at[order], latest[order]
    label, source, priority = (ordered[c].to_numpy() for c in ("label", "source", "priority"))
    return pd.DataFrame({
        "timestamp": ordered["timestamp"].array[at],  # the array keeps the dtype (a Series here would not)
        "request_id": ordered["request_id"].to_numpy()[at],
        "label": np.where(t >= 0, label[t], ""),
        "source": np.where(t >= 0, source[t], source[p]),
        "priority": np.where(p >= 0, priority[p], ""),
        "priority_source": np.where(p >= 0, source[p], ""),
    })
