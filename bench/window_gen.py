"""A week of split-mode A/B traffic written straight into a log root, as the router and compaction leave it.

    from window_gen import write_window  # as bench/growth_bench.py does: bench/ scripts import their neighbours
    window = write_window(root, n_requests=10_000_000, customers=300_000)

What is written (deterministic for a seed, vectorised with numpy and pyarrow so 30M requests take minutes):

- Champion v3 (arm A) against challenger v4 (arm B) in split mode at 0.5, every customer assigned by the
  router's own rule (`router.assign.assign`: a hash of the experiment id and the customer id) under the
  experiment id the router derives (as `router.config.experiment_id` does).
- `customers` customers, each sending at least one request; the rest follow a lognormal volume spread
  (sigma `VOLUME_SIGMA`), so a few customers send hundreds of times the median. Each belongs to one of a few
  integrations (its `integration` on requests, its `source` on feedback), spread uniformly over the window.
- 8 topics; each customer has its own difficulty (a logit-normal spread), the challenger is `ACCURACY`'s few
  points more accurate; confidence is higher on right answers; latency 2-10 ms (the challenger a little
  slower); a rare challenger failure is answered by the champion and logged as a fallback.
- `champion_confidence`, as the router logs it at serve time: the served confidence where the champion
  answered, else the champion's own score, drawn from the same ease of the ticket as the challenger's answer
  (a hard ticket is hard for both), so it is the covariate CUPAC needs.
- Masked ticket texts of 60-120 characters (English and some Russian phrases, a reference number), request
  ids as the router makes them (32 hex digits, unique: a bijective mix of the request's index).
- Feedback for `labelled_share` of the requests, 20 s to an hour after them, from the customer's integration;
  feedback that would arrive after `end` is not there yet (so slightly fewer than the share are labelled,
  see `expected_labelled_share`).
- With `priorities`, both versions are two-head: each request logs the priority served (right with
  `PRIORITY_ACCURACY`, a true priority drawn with `PRIORITY_SHARES`) and its confidence, and each feedback row
  carries the true priority beside the topic; drawn from a stream of their own, so every other column is the
  same as without. Without it the priority columns are blank (one-head versions, topic feedback only).

Layout: the last `csv_days` UTC days are open days in the router's own line format (`ticket_ab.logwriter`,
with the CRC-32 column), split over two router workers' shard files (rolled over at the writer's
`max_bytes` as it would); the earlier days are closed days compacted into one Parquet file per day and log
(`ticket_ab.logstore.compacted_file`), byte for byte what `ticket_ab.compact` makes of those shards: the
rows as strings in timestamp order, the pandas metadata and the shard names it folded. So
`ticket_ab.requestlog.read_requests` gives the same rows whatever `csv_days` is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticket_ab.dayfile import encode_day_file
from ticket_ab.logstore import FEEDBACK, REQUESTS, compacted_file, partition_dir, shard_name
from ticket_ab.logwriter import DEFAULT_MAX_BYTES, header
from ticket_ab.names import CHALLENGER, CHAMPION, SPLIT, A, B
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from ticket_ab.schema import PRIORITIES, TOPICS

END = datetime(2026, 12, 1, tzinfo=UTC)  # the window's default end ("now"): midnight, so 7 days are 7 day folders
VERSIONS = {A: "3", B: "4"}  # champion v3, challenger v4
SPLIT_B = 0.5
ACCURACY = {A: 0.80, B: 0.83}  # for a customer of average difficulty
CUSTOMER_SPREAD = 0.6  # sd of a customer's difficulty on the logit scale
VOLUME_SIGMA = 1.5  # lognormal spread of the customers' volumes
FALLBACK_RATE = 0.0005  # challenger failures, answered by the champion
FALLBACK = "challenger_error:TimeoutError"  # router.scoring's CHALLENGER_ERROR and the exception's name
TOPIC_SHARES = (0.16, 0.12, 0.15, 0.13, 0.07, 0.17, 0.06, 0.14)
PRIORITY_SHARES = (0.35, 0.35, 0.2, 0.1)  # low, medium, high, urgent (`priorities` only)
PRIORITY_ACCURACY = {A: 0.75, B: 0.78}
INTEGRATIONS = ("zendesk", "freshdesk", "jira-sm", "web-form")
INTEGRATION_SHARES = (0.45, 0.30, 0.15, 0.10)
TICKET_PREFIXES = ("ZD", "FD", "SD", "WEB")
FEEDBACK_DELAY_S = (20.0, 600.0, 3600.0)  # minimum, mean of the exponential part, maximum
LATENCY_MS = (3.5, 0.35, 0.6)  # median, lognormal sigma, the challenger's extra ms
HOST, PIDS = "ticket-ab-router-0", (4101, 4102)  # two gunicorn workers on one host
ROW_GROUP = 1024 * 1024  # pyarrow's default row group: day files are written in chunks of exactly this many rows

OPENERS = (
    "hello team",
    "hi support",
    "good morning",
    "dear helpdesk",
    "hi there team",
    "urgent request",
    "hey there team",
    "please help",
    "hello again",
    "good afternoon",
    "здравствуйте",
    "добрый день",
)
DETAILS = (
    "since this morning",
    "after the latest update",
    "for the whole team",
    "again today as well",
    "on my new laptop",
    "when I work from home",
    "since the office move",
    "for two days now",
    "only in the afternoon",
    "after the password change",
    "for all new colleagues",
    "since last Monday",
    "со вчерашнего дня",
    "после обновления",
)
CLOSINGS = (
    "thanks a lot",
    "please advise",
    "can someone check",
    "this blocks my work",
    "kind regards",
    "thank you in advance",
    "please call me back",
    "best regards",
    "заранее спасибо",
    "many thanks",
)
PHRASES = {
    "access": (
        "cannot log in to the portal",
        "my account is locked after three attempts",
        "I need access to the shared finance folder",
        "the two factor code never arrives",
        "permission denied on the project drive",
        "SSO sends me back to the login page",
        "не могу войти в личный кабинет",
    ),
    "billing": (
        "the invoice shows the wrong amount",
        "we were charged twice this month",
        "please send a copy of the last invoice",
        "the refund has not arrived yet",
        "our VAT number is missing on the bill",
        "the card payment was declined",
        "нам выставили счет дважды",
    ),
    "email": (
        "my mailbox is full and I cannot send",
        "emails to external partners bounce",
        "the shared calendar does not sync",
        "Outlook keeps asking for my password",
        "attachments over 10 MB are rejected",
        "I receive a lot of spam since Friday",
        "письма не доходят до клиента",
    ),
    "hardware": (
        "my laptop does not start",
        "the docking station does not detect the monitor",
        "the printer on floor 3 jams all the time",
        "the keyboard has sticky keys",
        "my headset microphone does not work",
        "the battery drains within an hour",
        "не включается рабочий ноутбук",
    ),
    "hr_onboarding": (
        "a new colleague starts Monday and needs an account",
        "please prepare a laptop for the new hire",
        "the onboarding checklist is missing the badge",
        "the intern has no email address yet",
        "please add the new hire to the team channel",
        "нужен доступ для нового сотрудника",
    ),
    "network": (
        "the VPN disconnects every few minutes",
        "wifi in the meeting room is very slow",
        "I cannot reach the intranet from home",
        "the office network drops at noon",
        "DNS does not resolve the internal sites",
        "the remote desktop connection times out",
        "у меня не работает VPN",
    ),
    "purchase": (
        "we need five more software licenses",
        "please order a second monitor for me",
        "I would like a quote for new laptops",
        "the purchase order is stuck in approval",
        "we need a license for the design tool",
        "заказать новый монитор",
    ),
    "software_bug": (
        "the app crashes when I save a report",
        "the export button does nothing",
        "the dashboard shows an error after login",
        "the search returns no results at all",
        "the mobile app freezes on the start screen",
        "the sync job fails every night",
        "приложение падает при сохранении",
    ),
}


@dataclass
class Window:
    """What `write_window` wrote."""

    root: Path
    start: datetime  # the first moment of the window (pass it as analysis.py --since)
    end: datetime
    requests: int
    feedback: int
    customers: int  # customers with at least one request (all of them)
    parquet_files: list[Path] = field(default_factory=list)
    csv_files: list[Path] = field(default_factory=list)
    bytes: int = 0


@dataclass
class _Plan:
    """The window's customers and how their requests spread over the days: drawn once, days drawn from it."""

    seed: int
    start_ms: int
    end_ms: int
    days: list[date]
    day_lo_ms: np.ndarray  # each day's first covered ms
    day_hi_ms: np.ndarray  # and the end of its covered span (exclusive)
    per_day: np.ndarray  # (customers, days) request counts
    arm: np.ndarray  # 1 for B
    integration: np.ndarray
    difficulty: np.ndarray  # logit shift per customer
    customer_ids: pa.Array
    experiment: str
    labelled_share: float
    id_key: int
    priorities: bool = False  # two-head versions and priority feedback (`write_window`)


def expected_labelled_share(labelled_share: float, days: float) -> tuple[float, float]:
    """The range the labelled share of a window of `days` days lies in before sampling noise: feedback due
    after the window's end is not there yet, which costs at most the longest delay's share of the window."""
    lost = FEEDBACK_DELAY_S[2] / (days * 86_400.0)
    return labelled_share * (1.0 - lost), labelled_share


def write_window(
    root: str | Path,
    n_requests: int,
    customers: int,
    days: int = 7,
    labelled_share: float = 1 / 3,
    seed: int = 0,
    end: datetime = END,
    csv_days: int = 2,
    max_bytes: int = DEFAULT_MAX_BYTES,
    priorities: bool = False,
) -> Window:
    """Write `n_requests` requests of `customers` customers over the `days` days before `end` under `root`.

    The last `csv_days` UTC days are router shards (two workers, rolled over at `max_bytes`), the days
    before them compacted Parquet day files; see the module docstring.
    """
    if not 1 <= customers <= n_requests:
        raise ValueError(f"need 1 <= customers <= n_requests, got {customers:,} customers for {n_requests:,}")
    if days <= 0 or csv_days < 0 or not 0.0 <= labelled_share <= 1.0:
        raise ValueError("days must be positive, csv_days at least 0 and labelled_share in [0, 1]")
    end = end.astimezone(UTC)
    start = end - timedelta(days=days)
    plan = _plan(n_requests, customers, start, end, labelled_share, seed)
    plan.priorities = priorities
    root = Path(root)
    window = Window(root, start, end, n_requests, 0, customers)
    workers = {
        kind: [_Worker(root, kind, pid, _started(start, i), max_bytes) for i, pid in enumerate(PIDS)]
        for kind in (REQUESTS, FEEDBACK)
    }
    first_csv = len(plan.days) - csv_days
    carried = _empty_feedback()
    offset = 0
    for d, day in enumerate(plan.days):
        rows = _day_requests(plan, d, offset)
        offset += len(rows["ts"])
        feedback, carried = _day_feedback(plan, d, rows, carried)
        window.feedback += len(feedback["ts"])
        for kind, table, part in ((REQUESTS, _request_table, rows), (FEEDBACK, _feedback_table, feedback)):
            if d >= first_csv:
                window.csv_files += _write_csv_day(workers[kind], day, table, plan, part)
            elif len(part["ts"]):  # compaction makes no day file of a day without rows
                window.parquet_files.append(_write_parquet_day(root, kind, day, workers[kind], table, plan, part))
    for kind in workers:
        for worker in workers[kind]:
            worker.close()
    window.bytes = sum(f.stat().st_size for f in window.csv_files + window.parquet_files)
    return window


# -- the plan and the rows -------------------------------------------------------------------------------------


def _plan(n: int, customers: int, start: datetime, end: datetime, labelled_share: float, seed: int) -> _Plan:
    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0.0, VOLUME_SIGMA, customers)
    counts = 1 + rng.multinomial(n - customers, weights / weights.sum())
    start_ms, end_ms = _ms(start), _ms(end)
    days, lo, hi = [], [], []
    day = start.date()
    while _ms(_midnight(day)) < end_ms:
        days.append(day)
        lo.append(max(start_ms, _ms(_midnight(day))))
        hi.append(min(end_ms, _ms(_midnight(day + timedelta(days=1)))))
        day += timedelta(days=1)
    spans = np.array(hi, dtype=np.int64) - np.array(lo, dtype=np.int64)
    per_day = rng.multinomial(counts, spans / spans.sum())
    ids = [f"C{k:07d}" for k in range(customers)]
    experiment = experiment_id((start - timedelta(hours=1)).isoformat(timespec="milliseconds"))
    assign = _router_assign().assign
    arm = np.fromiter((assign(cid, SPLIT_B, experiment) == B for cid in ids), dtype=bool, count=customers)
    integration = rng.choice(len(INTEGRATIONS), size=customers, p=INTEGRATION_SHARES).astype(np.int8)
    difficulty = rng.normal(0.0, CUSTOMER_SPREAD, customers)
    return _Plan(
        seed,
        start_ms,
        end_ms,
        days,
        np.array(lo, dtype=np.int64),
        np.array(hi, dtype=np.int64),
        per_day,
        arm.astype(np.int8),
        integration,
        difficulty,
        pa.array(ids, type=pa.string()),
        experiment,
        labelled_share,
        int(rng.integers(0, 2**63)),
    )


def _day_requests(plan: _Plan, d: int, offset: int) -> dict[str, np.ndarray]:
    """Day `d`'s requests as numbers, in the order compaction leaves them (timestamp, then worker)."""
    rng = np.random.default_rng([plan.seed, 1 + d])
    customer = np.repeat(np.arange(len(plan.arm), dtype=np.int32), plan.per_day[:, d])
    n = len(customer)
    ts = plan.day_lo_ms[d] + rng.integers(0, plan.day_hi_ms[d] - plan.day_lo_ms[d], n)
    worker = rng.integers(0, len(PIDS), n).astype(np.int8)
    order = np.lexsort((worker, ts))
    customer, ts, worker = customer[order], ts[order], worker[order]
    arm = plan.arm[customer]
    truth = rng.choice(len(TOPICS), size=n, p=TOPIC_SHARES).astype(np.int8)
    fallback = (arm == 1) & (rng.random(n) < FALLBACK_RATE)
    challenger = (arm == 1) & ~fallback
    base = np.where(challenger, _logit(ACCURACY[B]), _logit(ACCURACY[A]))
    ease = rng.random(n)  # the ticket's own ease, shared by both models: the champion's confidence predicts B too
    right = ease < 1.0 / (1.0 + np.exp(-(base + plan.difficulty[customer])))
    served = np.where(right, truth, (truth + rng.integers(1, len(TOPICS), n)) % len(TOPICS)).astype(np.int8)
    confidence = np.where(right, rng.integers(550_000, 1_000_000, n), rng.integers(250_000, 900_000, n))
    small = np.int8  # the per-row numbers are kept compact: a 30M window's day is 4.3M rows
    median, sigma, extra = LATENCY_MS
    latency = rng.lognormal(math.log(median), sigma, n) + extra * challenger
    latency_us = np.clip(np.round(latency * 1000), 1_200, 40_000).astype(np.int64)
    phrase_sizes = np.array([len(PHRASES[t]) for t in TOPICS])
    labelled = rng.random(n) < plan.labelled_share
    low, mean, high = FEEDBACK_DELAY_S
    delay_ms = np.round(np.minimum(low + rng.exponential(mean - low, n), high) * 1000).astype(np.int64)
    champion_right = ease < 1.0 / (1.0 + np.exp(-(_logit(ACCURACY[A]) + plan.difficulty[customer])))
    champion_confidence = np.where(challenger, np.where(champion_right, rng.integers(550_000, 1_000_000, n),
                                                        rng.integers(250_000, 900_000, n)), confidence)
    return {
        "ts": ts,
        "index": offset + np.arange(n, dtype=np.int64),
        "customer": customer,
        "worker": worker,
        "arm": arm,
        "challenger": challenger.astype(np.int8),
        "fallback": fallback.astype(np.int8),
        "truth": truth,
        "served": served,
        "confidence": confidence.astype(np.int32),
        "champion_confidence": champion_confidence.astype(np.int32),
        "latency_us": latency_us.astype(np.int32),
        "opener": rng.integers(0, len(OPENERS), n, dtype=small),
        "phrase": (rng.random(n) * phrase_sizes[truth]).astype(small),
        "detail": rng.integers(0, len(DETAILS), n, dtype=small),
        "closing": rng.integers(0, len(CLOSINGS), n, dtype=small),
        "ref": rng.integers(10_000, 1_000_000, n, dtype=np.int32),
        "labelled": labelled,
        "feedback_ts": ts + delay_ms,
        "feedback_worker": rng.integers(0, len(PIDS), n).astype(np.int8),
        **_priorities(plan, d, challenger),
    }


def _priorities(plan: _Plan, d: int, challenger: np.ndarray) -> dict[str, np.ndarray]:
    """Day `d`'s true and served priorities and the served one's confidence (-1: none served), from a stream of
    their own so the other columns are the same with or without them."""
    n = len(challenger)
    if not plan.priorities:
        return {"priority_truth": np.full(n, -1, np.int8), "priority_served": np.full(n, -1, np.int8),
                "priority_confidence": np.zeros(n, np.int32)}
    rng = np.random.default_rng([plan.seed, 1 + d, 2])
    truth = rng.choice(len(PRIORITIES), size=n, p=PRIORITY_SHARES).astype(np.int8)
    right = rng.random(n) < np.where(challenger, PRIORITY_ACCURACY[B], PRIORITY_ACCURACY[A])
    served = np.where(right, truth, (truth + rng.integers(1, len(PRIORITIES), n)) % len(PRIORITIES)).astype(np.int8)
    confidence = np.where(right, rng.integers(500_000, 1_000_000, n), rng.integers(300_000, 800_000, n))
    return {"priority_truth": truth, "priority_served": served, "priority_confidence": confidence.astype(np.int32)}


def _empty_feedback() -> dict[str, np.ndarray]:
    return {
        "ts": np.zeros(0, np.int64),
        "index": np.zeros(0, np.int64),
        "label": np.zeros(0, np.int8),
        "source": np.zeros(0, np.int8),
        "worker": np.zeros(0, np.int8),
        "priority": np.zeros(0, np.int8),
    }


def _day_feedback(
    plan: _Plan, d: int, rows: dict[str, np.ndarray], carried: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Day `d`'s feedback rows (those carried over from the day before first) and those due on a later day."""
    keep = rows["labelled"] & (rows["feedback_ts"] < plan.end_ms)
    fresh = {
        "ts": rows["feedback_ts"][keep],
        "index": rows["index"][keep],
        "label": rows["truth"][keep],
        "source": plan.integration[rows["customer"][keep]],
        "worker": rows["feedback_worker"][keep],
        "priority": rows["priority_truth"][keep],
    }
    today = fresh["ts"] < plan.day_hi_ms[d]
    merged = {k: np.concatenate([carried[k], fresh[k][today]]) for k in fresh}
    order = np.lexsort((merged["worker"], merged["ts"]))
    return {k: v[order] for k, v in merged.items()}, {k: v[~today] for k, v in fresh.items()}


# -- rows as the log's strings ---------------------------------------------------------------------------------


def _request_table(plan: _Plan, rows: dict[str, np.ndarray], lo: int, hi: int) -> pa.Table:
    """Rows [lo, hi) as REQUEST_COLUMNS strings, formatted as the router formats them."""
    r = {k: v[lo:hi] for k, v in rows.items()}
    n = hi - lo
    arm, answered_by_b = r["arm"].astype(np.int64), r["challenger"].astype(np.int64)
    integration = plan.integration[r["customer"]]
    texts = [
        _take(OPENERS, r["opener"]),
        _take(_PHRASE_POOL, _PHRASE_START[r["truth"]] + r["phrase"]),
        _take(DETAILS, r["detail"]),
        _take(CLOSINGS, r["closing"]),
        pc.binary_join_element_wise("ref", pc.cast(pa.array(r["ref"]), pa.string()), " "),
    ]
    columns = {
        "timestamp": _stamps(r["ts"]),
        "request_id": _request_ids(r["index"], plan.id_key),
        "ticket_id": pc.binary_join_element_wise(
            _take(TICKET_PREFIXES, integration), pc.cast(pa.array(r["index"] + 100_000), pa.string()), "-"
        ),
        "customer_id": plan.customer_ids.take(pa.array(r["customer"])),
        "variant": _take((A, B), arm),
        "model_alias": _take((CHAMPION, CHALLENGER), answered_by_b),
        "model_version": _take((VERSIONS[A], VERSIONS[B]), answered_by_b),
        "split_b": _constant(str(SPLIT_B), n),
        "mode": _constant(SPLIT, n),
        "experiment_id": _constant(plan.experiment, n),
        "topic": _take(TOPICS, r["served"]),
        "confidence": _decimal(r["confidence"], 6),
        "latency_ms": _decimal(r["latency_us"], 3),
        "fallback": _take(("", FALLBACK), r["fallback"].astype(np.int64)),
        "shadow_version": _constant("", n),
        "shadow_topic": _constant("", n),
        "shadow_confidence": _constant("", n),
        "champion_confidence": _decimal(r["champion_confidence"], 6),
        "integration": _take(INTEGRATIONS, integration),
        "priority": _take(("", *PRIORITIES), r["priority_served"].astype(np.int64) + 1),  # blank: one-head
        "priority_confidence": _decimal(r["priority_confidence"], 6) if plan.priorities else _constant("", n),
        "shadow_priority": _constant("", n),
        "text": pc.binary_join_element_wise(*texts, " "),
    }
    return pa.table([columns[c] for c in REQUEST_COLUMNS], names=list(REQUEST_COLUMNS))


def _feedback_table(plan: _Plan, rows: dict[str, np.ndarray], lo: int, hi: int) -> pa.Table:
    """Feedback rows [lo, hi) as FEEDBACK_COLUMNS strings."""
    columns = {
        "timestamp": _stamps(rows["ts"][lo:hi]),
        "request_id": _request_ids(rows["index"][lo:hi], plan.id_key),
        "label": _take(TOPICS, rows["label"][lo:hi]),
        "source": _take(INTEGRATIONS, rows["source"][lo:hi]),
        "priority": _take(("", *PRIORITIES), rows["priority"][lo:hi].astype(np.int64) + 1),  # blank: topic only
    }
    return pa.table([columns[c] for c in FEEDBACK_COLUMNS], names=list(FEEDBACK_COLUMNS))


def _chunks(table, plan: _Plan, rows: dict[str, np.ndarray]) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """The day's rows as tables of at most ROW_GROUP rows, with each row's worker."""
    n = len(rows["ts"])
    worker = rows["worker"]
    for lo in range(0, n, ROW_GROUP):
        hi = min(n, lo + ROW_GROUP)
        yield table(plan, rows, lo, hi), worker[lo:hi]


def _line_lengths(table: pa.Table) -> np.ndarray:
    """Each row's line length in the writer's format: fields, commas, `,` + 8 hex digits + newline."""
    total = np.full(table.num_rows, table.num_columns - 1 + 10, dtype=np.int64)
    for column in table.columns:
        total += pc.binary_length(column).to_numpy(zero_copy_only=False)
    return total


def _lines(table: pa.Table) -> pa.Array:
    """Each row as the bytes `ticket_ab.logwriter.encode_line` makes of it (no field needs quoting: none holds a
    comma, quote or line break, and none has spaces to fold), newline included."""
    body = pc.binary_join_element_wise(*[column.combine_chunks() for column in table.columns], ",")
    offsets, data = _spans(body)
    view = memoryview(data)
    starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
    crcs = np.fromiter(
        (zlib.crc32(view[a:b]) for a, b in zip(starts, ends, strict=True)), dtype=np.uint32, count=len(body)
    )
    tail = np.empty((len(body), 10), dtype=np.uint8)
    tail[:, 0], tail[:, 9] = ord(","), ord("\n")
    tail[:, 1:9] = _hex(crcs.astype(">u4").view(np.uint8).reshape(-1, 4))
    return pc.binary_join_element_wise(body, _fixed_strings(tail), "")


# -- writing ---------------------------------------------------------------------------------------------------


class _Worker:
    """One router worker's shard files of one log: a new file per day, and when one would pass `max_bytes`
    (`ticket_ab.logwriter.ShardedLog`'s rule, so the names are those the router would have used)."""

    def __init__(self, root: Path, kind: str, pid: int, start: str, max_bytes: int) -> None:
        self.root, self.kind, self.pid, self.start, self.max_bytes = root, kind, pid, start, max_bytes
        self.header = header(REQUEST_COLUMNS if kind == REQUESTS else FEEDBACK_COLUMNS)
        self.seq, self.size, self.day, self.write = 0, 0, None, True
        self.path: Path | None = None
        self.fh = None
        self.names: list[str] = []  # the day's files, named
        self.files: list[Path] = []  # and written

    def begin(self, day: date, write: bool) -> None:
        """Start `day`'s files: written, or only named (the shards a compacted day was made of)."""
        self.close()
        self.day, self.write, self.names, self.files = day, write, [], []

    def place(self, lengths: np.ndarray) -> Iterator[tuple[int, int]]:
        """Lay lines of `lengths` after those placed already, opening files as the router would: yields the
        (first, end) rows that go into the file open at that moment."""
        cum = np.concatenate(([0], np.cumsum(lengths)))
        i, n = 0, len(lengths)
        while i < n:
            if self.path is None:
                self._open()
            j = int(np.searchsorted(cum, self.max_bytes - self.size + cum[i], side="right")) - 1
            if j <= i:
                if self.size > len(self.header):
                    self.close()
                    continue
                j = i + 1  # a lone line above max_bytes still goes in a fresh file
            yield i, j
            self.size += int(cum[j] - cum[i])
            i = j

    def write_lines(self, lines: pa.Array) -> None:
        offsets, data = _spans(lines)
        view = memoryview(data)
        for i, j in self.place(np.diff(offsets)):
            self.fh.write(view[offsets[i] : offsets[j]])

    def _open(self) -> None:
        self.close()
        self.seq += 1
        self.path = partition_dir(self.root, self.kind, self.day) / shard_name(
            self.kind, HOST, self.pid, self.start, self.seq
        )
        self.names.append(self.path.name)
        self.size = len(self.header)
        if self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "wb")  # closed by close()
            self.fh.write(self.header)
            self.files.append(self.path)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        self.fh, self.path = None, None


def _write_csv_day(workers: list[_Worker], day: date, table, plan: _Plan, rows: dict[str, np.ndarray]) -> list[Path]:
    for worker in workers:
        worker.begin(day, write=True)
    for chunk, owner in _chunks(table, plan, rows):
        lines = _lines(chunk)
        for w, worker in enumerate(workers):
            worker.write_lines(lines.filter(pa.array(owner == w)))
    for worker in workers:
        worker.close()
    return [f for worker in workers for f in worker.files]


def _write_parquet_day(
    root: Path, kind: str, day: date, workers: list[_Worker], table, plan: _Plan, rows: dict[str, np.ndarray]
) -> Path:
    """The day file compaction would make of the day's shards: first the shards' names (a pass over the rows'
    line lengths), then the rows in chunks of one row group, under the metadata `encode_day_file` writes."""
    for worker in workers:
        worker.begin(day, write=False)
    for chunk, owner in _chunks(table, plan, rows):
        lengths = _line_lengths(chunk)
        for w, worker in enumerate(workers):
            for _ in worker.place(lengths[owner == w]):
                pass  # only the names count
    for worker in workers:
        worker.close()
    shards = {name for worker in workers for name in worker.names}
    columns = REQUEST_COLUMNS if kind == REQUESTS else FEEDBACK_COLUMNS
    sample = pd.DataFrame({c: ["x"] for c in columns})
    template = pq.read_schema(io.BytesIO(encode_day_file(sample, shards, [])))
    path = compacted_file(root, kind, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, template, compression="zstd", write_page_checksum=True) as writer:
        for chunk, _ in _chunks(table, plan, rows):
            writer.write_table(chunk.cast(template))
    return path


# -- helpers ---------------------------------------------------------------------------------------------------

_PHRASE_POOL = tuple(p for t in TOPICS for p in PHRASES[t])
_PHRASE_START = np.cumsum([0] + [len(PHRASES[t]) for t in TOPICS])[:-1]
_HEX_PAIRS = np.frombuffer("".join(f"{b:02x}" for b in range(256)).encode(), dtype=np.uint16)  # byte -> 2 digits
for _text in (*OPENERS, *DETAILS, *CLOSINGS, *_PHRASE_POOL, *INTEGRATIONS):
    assert not set(_text) & set(',"\r\n') and " ".join(_text.split()) == _text, _text  # fields need no quoting


def experiment_id(started_at: str) -> str:
    """`router.config.experiment_id` of split mode started at `started_at` with champion v3 and challenger v4."""
    material = json.dumps([SPLIT, started_at, VERSIONS[A], VERSIONS[B]])
    return hashlib.blake2b(material.encode("utf-8"), digest_size=6).hexdigest()


def _router_assign():
    """router/assign.py, the router's assignment rule, loaded from its file: `import router.assign` would run
    router/__init__.py first (Flask and MLflow, seconds of imports a generator does not need)."""
    path = Path(__file__).resolve().parents[1] / "router" / "assign.py"
    spec = importlib.util.spec_from_file_location("_window_gen_router_assign", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _started(start: datetime, i: int) -> str:
    """A worker's start stamp in its file names (`ShardedLog`): started a little before the window."""
    return (start - timedelta(hours=3, seconds=i)).strftime("%Y%m%dT%H%M%S%fZ")


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _take(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.string()).take(pa.array(np.asarray(index, dtype=np.int64)))


def _constant(value: str, n: int) -> pa.Array:
    return _take((value,), np.zeros(n, dtype=np.int64))


def _stamps(ms: np.ndarray) -> pa.Array:
    """`datetime.isoformat(timespec="milliseconds")` of UTC moments (ms since the epoch), as the router stamps
    rows: `2026-11-24T10:00:00.123+00:00`, digit by digit (pyarrow's strftime is ten times slower)."""
    day, clock = np.divmod(np.asarray(ms, dtype=np.int64), 86_400_000)
    days, which = np.unique(day, return_inverse=True)
    dates = np.array([[*f"{np.datetime64(int(d), 'D')}T".encode()] for d in days], dtype=np.uint8).reshape(-1, 11)
    out = np.empty((len(clock), 29), dtype=np.uint8)
    out[:, :11] = dates[which]
    out[:, 23:] = np.frombuffer(b"+00:00", dtype=np.uint8)
    out[:, [13, 16]], out[:, 19] = ord(":"), ord(".")
    for position, unit, width in ((11, 3_600_000, 2), (14, 60_000, 2), (17, 1000, 2), (20, 1, 3)):
        value = (clock // unit) % (24 if unit == 3_600_000 else 60 if unit > 1 else 1000)
        for k in range(width):
            out[:, position + width - 1 - k] = ord("0") + value % 10
            value = value // 10
    return _fixed_strings(out)


def _decimal(units: np.ndarray, places: int) -> pa.Array:
    """str(round(x, places)) for x = units / 10**places, as Python prints it (trailing zeros dropped, one kept)."""
    scale = 10**places
    whole = pc.cast(pa.array(units // scale), pa.string())
    frac = pc.utf8_rtrim(pc.utf8_lpad(pc.cast(pa.array(units % scale), pa.string()), places, "0"), "0")
    frac = pc.if_else(pc.equal(frac, ""), "0", frac)
    return pc.binary_join_element_wise(whole, frac, ".")


def _hex(data: np.ndarray) -> np.ndarray:
    """(n, k) bytes as (n, 2k) lowercase hex digits."""
    return _HEX_PAIRS[data].view(np.uint8).reshape(data.shape[0], data.shape[1] * 2)


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """(n, k) ASCII bytes as n strings of k characters."""
    n, k = chars.shape
    offsets = np.arange(0, (n + 1) * k, k, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64, so distinct inputs give distinct outputs."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _request_ids(index: np.ndarray, key: int) -> pa.Array:
    """32 hex digits like the router's uuid4().hex; the first 16 are a bijection of the index, so ids are unique."""
    with np.errstate(over="ignore"):
        first = _mix(index.astype(np.uint64) ^ np.uint64(key))
        second = _mix(first ^ np.uint64(0x5851F42D4C957F2D))
    raw = np.concatenate(
        [first.astype(">u8").view(np.uint8).reshape(-1, 8), second.astype(">u8").view(np.uint8).reshape(-1, 8)], axis=1
    )
    return _fixed_strings(_hex(raw))


def _spans(strings: pa.Array) -> tuple[np.ndarray, pa.Buffer]:
    """A string array's value offsets (int64, from its first value) and its data buffer."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + len(strings) + 1]
    return offsets.astype(np.int64), strings.buffers()[2]
