"""Reads cost the window, not the history: the DAG's window read and `analysis.py --since`, timed
on a 10,000-request window alone and beside 1,000,000 rows of older history (bar: <= 1.3x).

The history (60 earlier days, feedback for a third of it) is written straight in the writer's line
format (`encode_line`, one file per day), which is what the router leaves behind, minus the HTTP.
Both reads go through the product code: `retrain.tasks.window.collect` from the watermark (the
DAG's first task) and `analysis.analysis.load` with `--since` (the A/B report's read and analysis).
Each is timed as the best of --repeat runs.

    python bench/window_read_bench.py [--history 1000000] [--window 10000] [--days 60] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from analysis import analysis
from retrain.tasks import window as win
from ticket_ab.logstore import FEEDBACK, REQUESTS, partition_dir, shard_name
from ticket_ab.logwriter import encode_line, header
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from ticket_ab.schema import TOPICS
from ticket_ab.settings import ABSettings, FeedbackSettings

TARGET = 1.3
WORDS = ("vpn", "invoice", "laptop", "password", "mailbox", "printer", "refund", "wifi", "license", "crash")


def write_day(root: Path, day: datetime, n: int, seed: int, start_index: int) -> None:
    """`n` requests spread over one UTC day, and feedback for a third of them, in one file per log."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, 86_399, n))
    topics = rng.integers(len(TOPICS), size=n)
    variants = rng.random(n) < 0.5
    customers = rng.integers(1, 5000, size=n)
    requests, feedback = [header(REQUEST_COLUMNS)], [header(FEEDBACK_COLUMNS)]
    for i in range(n):
        moment = day + timedelta(seconds=float(seconds[i]))
        request_id = f"r{start_index + i:08d}"
        topic = TOPICS[topics[i]]
        b = bool(variants[i])
        requests.append(encode_line(REQUEST_COLUMNS, {
            "timestamp": moment.isoformat(timespec="milliseconds"), "request_id": request_id,
            "ticket_id": f"T-{start_index + i}", "customer_id": f"C-{customers[i]:05d}", "variant": "B" if b else "A",
            "model_alias": "challenger" if b else "champion", "model_version": "4" if b else "3", "split_b": 0.5,
            "mode": "split", "experiment_id": "exp-1", "topic": topic, "confidence": 0.87, "latency_ms": 2.4,
            "text": f"ticket {start_index + i}: my {WORDS[i % len(WORDS)]} is broken since this morning, "
                    f"please help, the {WORDS[(i * 7) % len(WORDS)]} too"}))
        if i % 3 == 0:
            feedback.append(encode_line(FEEDBACK_COLUMNS, {
                "timestamp": (moment + timedelta(seconds=60)).isoformat(timespec="milliseconds"),
                "request_id": request_id, "label": topic, "source": f"agent-{i % 7}"}))
    for kind, lines in ((REQUESTS, requests), (FEEDBACK, feedback)):
        folder = partition_dir(root, kind, day.date())
        folder.mkdir(parents=True, exist_ok=True)
        (folder / shard_name(kind, "bench", seed, "20261124T000000000000Z", 1)).write_bytes(b"".join(lines))


def best_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def time_reads(root: Path, watermark: datetime, repeat: int) -> tuple[float, float, int]:
    """(window read s, analysis --since s, window rows) for the logs under `root`."""
    mark = win.Watermark(requests_until=watermark.isoformat())
    incoming = root / "no-incoming"
    rows = len(win.collect(root, incoming, mark, FeedbackSettings()).frame)
    window_s = best_of(repeat, lambda: win.collect(root, incoming, mark, FeedbackSettings()))
    since = analysis.parse_since(watermark.isoformat())
    analysis_s = best_of(repeat, lambda: analysis.load(root, root, since, ABSettings()))
    return window_s, analysis_s, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="window-read-bench-") as tmp:
        alone, beside = Path(tmp) / "window-only", Path(tmp) / "with-history"
        started = time.perf_counter()
        for root in (alone, beside):
            write_day(root, today, args.window, seed=0, start_index=0)
        per_day = args.history // args.days
        for d in range(1, args.days + 1):
            write_day(beside, today - timedelta(days=d), per_day, seed=d, start_index=d * per_day * 10)
        print(f"wrote {args.window:,} window requests (today) and {per_day * args.days:,} history requests over "
              f"{args.days} earlier days, with feedback for a third, in {time.perf_counter() - started:.1f} s")
        watermark = today - timedelta(microseconds=1)  # the last run consumed everything before today
        base = time_reads(alone, watermark, args.repeat)
        loaded = time_reads(beside, watermark, args.repeat)
    print(f"window rows read: {base[2]:,} alone, {loaded[2]:,} beside the history")
    print(f"{'read':<28} {'window only':>12} {'with history':>13} {'ratio':>7}")
    worst = 0.0
    for name, alone_s, beside_s in (("DAG window (collect)", base[0], loaded[0]),
                                    ("analysis.py --since", base[1], loaded[1])):
        ratio = beside_s / alone_s
        worst = max(worst, ratio)
        print(f"{name:<28} {alone_s * 1000:>9.1f} ms {beside_s * 1000:>10.1f} ms {ratio:>6.2f}x")
    print(f"target <= {TARGET}x: {'met' if worst <= TARGET else 'NOT met'} (worst {worst:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
