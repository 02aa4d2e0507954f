"""The DAG's window: what arrived since the last successful run, with the labels we can trust.

Sources are the router's request log, ticket files dropped in `incoming/` and the feedback log,
whose labels `retrain.ml.feedback` judges (the join rule, then the guards against poisoning).
Everything here is I/O at the edges around pure functions, and nothing here may fail a run: a
torn log line, an unreadable file or suspicious feedback is counted, explained and skipped, so the
operator reads what happened in the run report instead of a traceback.

The logs are read from the watermark on (`since`), so a run costs its window, not the history, and
they are read where they lie, out of core (`retrain.tasks.windowscan`): every count is over the whole
window, in SQL, while the frame the run keeps holds only every labelled ticket, a seeded sample of
the window for the drift check (TICKET_AB_WINDOW_SAMPLE_ROWS, stated in the stats and the report) and
the incoming files' tickets; so the DAG's memory grows with the labels, not with the traffic.
The watermark also carries the sources of earlier windows' labels as counts (topic labels and priorities
apart), which the feedback guards judge against (the logs of those windows are not read again, and may be gone
to retention).

The watermark (a small JSON file) is only advanced by the run's last task, so a failed run leaves
it where it was and the next run sees the same tickets again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.ml.feedback import guard_feedback
from retrain.tasks import windowscan
from retrain.tasks.windowscan import Sampling
from ticket_ab import logscan
from ticket_ab.atomic import write_atomic
from ticket_ab.logstore import FEEDBACK, REQUESTS
from ticket_ab.pii import is_personal, mask
from ticket_ab.schema import PRIORITY, TEXT, TOPIC, TicketDataError, as_labels, is_known, load_tickets
from ticket_ab.settings import FeedbackSettings, get_settings

# label_priority: the agents' priority (NaN where none: a row may carry either label or both); drift_sample: the row
# is in the drift check's sample
WINDOW_COLUMNS = ("request_id", "ticket_id", "customer_id", "timestamp", "origin", TEXT, "served_topic", "label",
                  "label_source", "label_priority", "drift_sample")
LATE_COLUMNS = ("request_id", "label", "source", PRIORITY)  # label or priority '' where the feedback gave none
INCOMING_PATTERNS = ("*.csv", "*.csv.gz", "*.parquet")
ROUTER = "router"
INCOMING = "incoming"


@dataclass
class Watermark:
    """How far previous successful runs have read: a request timestamp and the incoming files seen."""

    requests_until: str | None = None  # ISO timestamp of the newest request row already consumed
    incoming: dict[str, str] = field(default_factory=dict)  # file name -> size:mtime signature
    feedback_sources: dict[str, int] = field(default_factory=dict)  # labels judged so far, by source
    feedback_priority_sources: dict[str, int] = field(default_factory=dict)  # priorities used so far, by source
    run_id: str | None = None
    committed_at: str | None = None

    @property
    def until(self) -> pd.Timestamp | None:
        return pd.Timestamp(self.requests_until) if self.requests_until else None


@dataclass
class IncomingRead:
    rows: pd.DataFrame
    files: dict[str, str]  # every file now present -> signature (consumed or not)
    bad_files: list[dict[str, str]]
    new_files: list[str]


@dataclass
class Window:
    frame: pd.DataFrame  # WINDOW_COLUMNS
    stats: dict[str, Any]
    next_watermark: Watermark
    late: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LATE_COLUMNS)))  # for stored tickets


def watermark_path(airflow_dir: Path) -> Path:
    """The watermark lives with the scheduler state it belongs to."""
    return Path(airflow_dir) / "ticket_drift_retrain.watermark.json"


def load_watermark(path: Path) -> Watermark:
    """A missing or unreadable watermark means "read everything": safe, just a bigger first window."""
    try:
        data = json.loads(Path(path).read_text())
        return Watermark(requests_until=data.get("requests_until"), incoming=dict(data.get("incoming") or {}),
                         feedback_sources=_counts(data.get("feedback_sources")),
                         feedback_priority_sources=_counts(data.get("feedback_priority_sources")),
                         run_id=data.get("run_id"), committed_at=data.get("committed_at"))
    except (OSError, ValueError, AttributeError, TypeError):
        return Watermark()


def _counts(value: Any) -> dict[str, int]:
    """A watermark's source counts; missing (a watermark written before they were kept) reads as none."""
    return {str(k): int(v) for k, v in (value or {}).items()}


def save_watermark(path: Path, watermark: Watermark, *, run_id: str) -> Watermark:
    """Write atomically (temp file + rename): a crash never leaves half a watermark behind."""
    committed = Watermark(requests_until=watermark.requests_until, incoming=dict(watermark.incoming),
                          feedback_sources=dict(watermark.feedback_sources),
                          feedback_priority_sources=dict(watermark.feedback_priority_sources), run_id=run_id,
                          committed_at=datetime.now(UTC).isoformat(timespec="seconds"))
    write_atomic(Path(path), json.dumps(asdict(committed), indent=2, sort_keys=True))
    return committed


def _signature(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def read_incoming(directory: Path, seen: dict[str, str]) -> IncomingRead:
    """Ticket files not consumed yet (new name or changed content); a bad file is skipped with its reason."""
    directory = Path(directory)
    paths = sorted({p for pattern in INCOMING_PATTERNS for p in directory.glob(pattern)}) if directory.is_dir() else []
    files = {p.name: _signature(p) for p in paths}
    frames, bad, new = [], [], []
    for path in paths:
        if seen.get(path.name) == files[path.name]:
            continue
        new.append(path.name)
        try:
            tickets = load_tickets(path)
        except TicketDataError as exc:
            bad.append({"file": path.name, "reason": str(exc)})
            continue
        frames.append(_incoming_rows(tickets, path.name))
    rows = pd.concat(frames, ignore_index=True) if frames else _empty_window()
    return IncomingRead(rows=rows, files=files, bad_files=bad, new_files=new)


def _incoming_rows(tickets: pd.DataFrame, name: str) -> pd.DataFrame:
    """Dropped files are helpdesk exports: a `topic` there is the agent's label, as good as feedback, and so is a
    `priority`.

    Their personal data is masked on the way in, as the router masks a request: the text by `mask`; a
    customer id that is an e-mail or phone is dropped (the router's pseudonym needs its key, which the
    pipeline does not hold), so the ticket counts as a customer of its own."""
    n = len(tickets)
    label = tickets[TOPIC] if TOPIC in tickets.columns else pd.Series([None] * n, index=tickets.index)
    priority = as_labels(tickets[PRIORITY].astype(object)) if PRIORITY in tickets.columns else [None] * n
    ticket_id = tickets["ticket_id"].astype(str) if "ticket_id" in tickets.columns else pd.Series(
        [f"{name}#{i}" for i in range(n)], index=tickets.index)
    if "created_at" in tickets.columns:
        stamps = pd.to_datetime(tickets["created_at"], utc=True, errors="coerce", format="ISO8601")
    else:
        stamps = pd.Series(pd.NaT, index=tickets.index, dtype="datetime64[ns, UTC]")
    customer = (tickets["customer_id"].astype("string").map(lambda c: None if pd.isna(c) or is_personal(c) else c)
                if "customer_id" in tickets.columns else [None] * n)
    frame = pd.DataFrame({
        "request_id": [None] * n,
        "ticket_id": ticket_id.to_numpy(),
        "customer_id": customer,
        "timestamp": stamps.to_numpy(),
        "origin": f"{INCOMING}:{name}",
        TEXT: tickets[TEXT].astype(str).map(mask).to_numpy(),
        "served_topic": None,
        "label": label.to_numpy(),
        "label_source": [INCOMING if (isinstance(v, str) and v) or p else None for v, p in zip(label, priority,
                                                                                               strict=True)],
        "label_priority": priority,
        "drift_sample": True,  # a file's tickets are all kept and all measured
    })
    return frame[list(WINDOW_COLUMNS)]


def _empty_window() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in WINDOW_COLUMNS})


def new_requests(requests: pd.DataFrame, until: pd.Timestamp | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Request rows after the watermark with usable text, first occurrence of each request id, for rows already
    in memory: the definition `retrain.tasks.windowscan` carries out in SQL over the log files for the DAG's
    window (a test holds the two equal)."""
    rows = requests if until is None else requests.loc[requests["timestamp"] > until]
    empty = rows[TEXT].fillna("").str.strip().eq("")
    usable = rows.loc[~empty]
    duplicate = usable["request_id"].duplicated(keep="first") & usable["request_id"].ne("")
    usable = usable.loc[~duplicate]
    frame = pd.DataFrame({
        "request_id": usable["request_id"].to_numpy(),
        "ticket_id": usable["ticket_id"].to_numpy(),
        "customer_id": usable["customer_id"].to_numpy(),
        "timestamp": usable["timestamp"].array,  # keeps the dtype: to_numpy() builds Python datetimes
        "origin": ROUTER,
        TEXT: usable[TEXT].to_numpy(),
        "served_topic": usable["topic"].to_numpy(),
        "label": None,
        "label_source": None,
        "label_priority": None,
        "drift_sample": True,  # rows in memory are all measured
    })[list(WINDOW_COLUMNS)]
    return frame, {"requests_new": int(len(rows)), "requests_empty_text": int(empty.sum()),
                   "requests_duplicate": int(duplicate.sum())}


def build_window(
    scan: logscan.Scan,
    incoming: IncomingRead,
    watermark: Watermark,
    guards: FeedbackSettings,
    sample: Sampling,
    until: pd.Timestamp | None = None,
    stored: set[str] | None = None,
) -> Window:
    """Join the sources into the frame the run keeps, count the whole window, and compute the watermark a
    successful run would commit. The logs are `scan`'s views (read up to `until`); every count is taken in
    SQL, and the frame holds every labelled ticket, the drift sample and the incoming files' tickets."""
    con = scan.con
    requests, newest = windowscan.select_requests(con, watermark.until, until, watermark.until)
    feedback, unreadable = windowscan.select_feedback(con, watermark.until)
    known, window_ids = windowscan.feedback_requests(con, feedback["request_id"])
    labels, feedback_stats = guard_feedback(feedback, known, window_ids, guards, watermark.feedback_sources, stored,
                                            watermark.feedback_priority_sources)
    late = labels.loc[labels["late"], list(LATE_COLUMNS)].reset_index(drop=True)
    routed = _routed(windowscan.kept_rows(con, labels.loc[~labels["late"]], sample))
    frame = pd.concat([f for f in (routed, incoming.rows) if len(f)], ignore_index=True) if (
        len(routed) or len(incoming.rows)) else _empty_window()
    next_watermark = _next_watermark(watermark, newest, incoming, feedback_stats)
    stats = {
        "rows": requests["router_rows"] + int(len(incoming.rows)),
        "router_rows": requests["router_rows"],
        "incoming_rows": int(len(incoming.rows)),
        "labelled": int(_has_label(frame).sum()),  # every labelled ticket is kept, so the frame has them all
        "labelled_priority": int(_has_priority(frame).sum()),  # and so is every ticket with a priority label
        "requests_read": requests["requests_read"],
        "requests_malformed": int(scan.malformed[REQUESTS]) + requests["requests_unreadable"],
        **{k: requests[k] for k in ("requests_new", "requests_empty_text", "requests_duplicate")},
        "feedback_read": int(len(feedback)),
        "feedback_malformed": int(scan.malformed[FEEDBACK]) + unreadable,
        **feedback_stats,
        "incoming_new_files": list(incoming.new_files),
        "incoming_bad_files": list(incoming.bad_files),
        "watermark_from": watermark.requests_until,
        "watermark_to": next_watermark.requests_until,
    }
    stats["malformed"] = (stats["requests_malformed"] + stats["requests_empty_text"] + stats["feedback_malformed"]
                          + stats["feedback_blank"] + len(incoming.bad_files))
    stats |= sample_stats(routed, requests["router_rows"], sample)
    return Window(frame=frame, stats=stats, next_watermark=next_watermark, late=late)


def _routed(rows: pd.DataFrame) -> pd.DataFrame:
    """The kept request rows as window rows."""
    return rows.assign(origin=ROUTER)[list(WINDOW_COLUMNS)] if len(rows) else _empty_window()


def _has_label(frame: pd.DataFrame) -> pd.Series:
    """Which rows have a topic label (the window's `labelled`: a priority alone is no topic label)."""
    return frame["label"].notna() & frame["label"].astype(str).str.strip().ne("")


def _has_priority(frame: pd.DataFrame) -> pd.Series:
    """Which rows have a priority label (kept whether or not they have a topic label)."""
    return is_known(frame["label_priority"])


def _next_watermark(watermark: Watermark, newest: pd.Timestamp | None, incoming: IncomingRead,
                    feedback_stats: dict[str, Any]) -> Watermark:
    """The newest request read, the incoming files now present and the feedback sources judged so far."""
    until = watermark.requests_until
    if newest is not None and (watermark.until is None or newest > watermark.until):
        until = newest.isoformat()
    # Bad files count as consumed too: they are reported once, and fixing one changes its signature.
    # Refused labels count too: the history is what earlier windows' feedback looked like, trusted or not.
    sources = Counter(watermark.feedback_sources) + Counter(feedback_stats["feedback_sources"])
    priorities = Counter(watermark.feedback_priority_sources) + Counter(feedback_stats["feedback_priority_sources"])
    return Watermark(requests_until=until, incoming=dict(incoming.files), feedback_sources=dict(sources),
                     feedback_priority_sources=dict(priorities))


def sample_stats(routed: pd.DataFrame, router_rows: int, sample: Sampling) -> dict[str, Any]:
    """What the drift check and the report's examples see, stated: the sample's size, of how many, its seed,
    and what relabelling keeps (every labelled ticket, and the sample's unlabelled ones)."""
    drawn = routed["drift_sample"].astype(bool)
    labelled = _has_label(routed)
    counts = {"sample_rows": int(drawn.sum()), "sample_limit": int(sample.rows), "sample_seed": int(sample.seed),
              "unlabelled": router_rows - int(labelled.sum()), "sample_unlabelled": int((drawn & ~labelled).sum()),
              "kept_rows": int(len(routed))}
    if counts["sample_rows"] < router_rows:
        note = (f"drift on a sample of {counts['sample_rows']} of {router_rows} routed tickets, seed {sample.seed} "
                f"({counts['sample_unlabelled']} of its tickets unlabelled, of {counts['unlabelled']}); every "
                f"labelled ticket kept")
    else:
        note = f"drift on all {router_rows} routed tickets (at most {sample.rows} are sampled, seed {sample.seed})"
    return counts | {"sample": note}


def collect(
    logs_dir: Path,
    incoming_dir: Path,
    watermark: Watermark,
    guards: FeedbackSettings,
    settle_s: float = 0.0,
    stored: set[str] | None = None,
    sample: Sampling | None = None,
) -> Window:
    """Read the three sources from disk and build the window (the DAG's first task).

    Both logs are read from the watermark on, where they lie (`ticket_ab.logscan`: DuckDB over the day
    files, in bounded memory): the window's requests are after it, and so is their feedback (it is sent
    after the answer). Only the day folders from the watermark's day are opened.
    Requests are read only up to `settle_s` ago: a row is stamped before it is written (and a shared
    volume shows it later still), so a row stamped just before the read could land after it, below
    the new watermark, and never be read. The next run reads what this one left.
    `sample` defaults to the environment's (`windowscan.sampling`).
    """
    sample = sample or windowscan.sampling(get_settings())
    until = pd.Timestamp.now(tz=UTC) - pd.Timedelta(seconds=settle_s) if settle_s else None
    with logscan.connect(sample.memory_mb) as con:
        scan = logscan.files(con, Path(logs_dir), Path(logs_dir), watermark.until)
        return build_window(scan, read_incoming(incoming_dir, watermark.incoming), watermark, guards, sample,
                            until, stored)


def count_new(logs_dir: Path, watermark: Watermark, until: pd.Timestamp | None, memory_mb: int) -> int:
    """The tickets `collect` would route into the window (after the watermark, up to `until`), counted where the
    logs lie: the log watcher's question every few minutes, without reading the window into memory."""
    with logscan.connect(memory_mb) as con:
        logscan.files(con, Path(logs_dir), Path(logs_dir), watermark.until)
        counts, _ = windowscan.select_requests(con, watermark.until, until, watermark.until)
    return counts["router_rows"]


def summarize(stats: dict[str, Any]) -> str:
    """One line for the log and the report: the counts an operator asks about first."""
    parts = [f"{stats['rows']} tickets ({stats['router_rows']} routed, {stats['incoming_rows']} from files)",
             f"{stats['labelled']} labelled", f"{stats['malformed']} malformed skipped"]
    if stats["sample_rows"] < stats["router_rows"]:
        parts.append(stats["sample"])
    dropped = stats["feedback_unknown_request"] + stats["feedback_superseded"]
    if dropped:
        parts.append(f"{stats['feedback_unknown_request']} feedback for unknown requests and "
                     f"{stats['feedback_superseded']} superseded labels dropped")
    if stats.get("feedback_quarantined_source"):
        parts.append(f"{stats['feedback_quarantined_rows']} feedback labels quarantined: "
                     f"{stats['feedback_quarantined_reason']}")
    if stats["feedback_refused"]:
        parts.append("feedback refused: " + "; ".join(stats["feedback_refused_reasons"]))
    if stats.get("feedback_priority_quarantined_source"):
        parts.append(f"{stats['feedback_priority_quarantined_rows']} priority labels quarantined: "
                     f"{stats['feedback_priority_quarantined_reason']}")
    if stats.get("feedback_priority_refused"):
        parts.append("priority feedback refused: " + "; ".join(stats["feedback_priority_refused_reasons"]))
    if stats["incoming_bad_files"]:
        parts.append("bad files: " + "; ".join(f"{b['file']}: {b['reason']}" for b in stats["incoming_bad_files"]))
    return ", ".join(parts)
