"""The growth bench's window generator (`bench/window_gen.py`) and its summary line (`bench/growth_bench.py`), at a
few thousand requests: the CSV days are the writer's exact lines, the Parquet days are what compaction makes of
the same shards (the reader gives the same rows as an all-CSV window of the same seed), and the window has the
customers, the split and the labelled share it was asked for."""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from ticket_ab.dayfile import encode_day_file, read_day_file
from ticket_ab.logstore import FEEDBACK, REQUESTS, csv_shards, partitions
from ticket_ab.logwriter import encode_line, header, verify
from ticket_ab.requestlog import FEEDBACK_COLUMNS, LOG_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests

BENCH = Path(__file__).resolve().parents[3] / "bench"
REQUESTS_N, CUSTOMERS, DAYS = 4_000, 250, 7
MAX_BYTES = 40_000  # small, so the workers' shards roll over as the router's do at 64 MiB


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def modules():
    """bench/window_gen.py and bench/growth_bench.py as modules (bench/ is a folder of scripts, not a package)."""
    sys.path.insert(0, str(BENCH))  # as when the bench runs as a script: it imports window_gen from its folder
    try:
        gen = _load("window_gen")
        yield gen, _load("growth_bench")
    finally:
        sys.path.remove(str(BENCH))
        for name in ("window_gen", "growth_bench"):
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def windows(modules, tmp_path_factory):
    """The same seed's window twice: as the bench writes it (2 CSV days) and with every day as CSV shards."""
    gen = modules[0]
    base = tmp_path_factory.mktemp("windows")
    mixed = gen.write_window(base / "mixed", REQUESTS_N, CUSTOMERS, days=DAYS, seed=3, max_bytes=MAX_BYTES)
    all_csv = gen.write_window(
        base / "csv", REQUESTS_N, CUSTOMERS, days=DAYS, seed=3, csv_days=DAYS, max_bytes=MAX_BYTES
    )
    return mixed, all_csv


def test_csv_days_are_the_writers_lines(windows):
    mixed, all_csv = windows
    assert len(mixed.csv_files) > 2 * 2 * 2  # two days, two logs, two workers, and rollovers
    for path in all_csv.csv_files:
        columns = LOG_COLUMNS[REQUESTS if path.name.startswith(REQUESTS) else FEEDBACK]
        data = path.read_bytes()
        assert len(data) <= MAX_BYTES and data.startswith(header(columns)) and data.endswith(b"\n")
        for line in data.splitlines()[1:]:
            body = verify(line)
            assert body is not None, line
            fields = next(csv.reader(io.StringIO(body.decode())))
            assert encode_line(columns, dict(zip(columns, fields, strict=True))) == line + b"\n"


def test_parquet_days_read_as_the_csv_days_of_the_same_seed(windows):
    mixed, all_csv = windows
    assert len(mixed.parquet_files) == 2 * (DAYS - 2)
    for read in (read_requests, read_feedback):
        ours, theirs = read(mixed.root), read(all_csv.root)
        assert ours.malformed == theirs.malformed == 0
        pd.testing.assert_frame_equal(ours.rows, theirs.rows)
    shards = {
        (kind, day): {p.name for p in csv_shards(folder, kind)}
        for kind in (REQUESTS, FEEDBACK)
        for day, folder in partitions(all_csv.root, kind)
    }
    for path in mixed.parquet_files:
        kind = REQUESTS if path.name.startswith(REQUESTS) else FEEDBACK
        day = pd.Timestamp(path.stem[len(kind) + 1 :]).date()
        compacted = read_day_file(path, LOG_COLUMNS[kind])
        assert compacted.shards == shards[(kind, day)] and compacted.dropped == b""
        # byte for byte what compaction's encoder writes for these rows and shards
        assert encode_day_file(compacted.rows, compacted.shards, []) == path.read_bytes()
    for ours, theirs in zip(mixed.csv_files, all_csv.csv_files[-len(mixed.csv_files) :], strict=True):
        assert ours.read_bytes() == theirs.read_bytes()  # the open days do not depend on how the rest is stored


def test_window_has_the_customers_split_and_labels_asked_for(modules, windows):
    gen = modules[0]
    mixed, _ = windows
    rows = read_requests(mixed.root).rows
    labels = read_feedback(mixed.root).rows
    assert len(rows) == mixed.requests == REQUESTS_N and rows["request_id"].is_unique
    assert rows["customer_id"].nunique() == mixed.customers == CUSTOMERS  # every customer sends at least one
    assert rows["timestamp"].min() >= mixed.start and rows["timestamp"].max() < mixed.end
    arms = rows.groupby("customer_id")["variant"].agg(["nunique", "first"])
    assert (arms["nunique"] == 1).all()  # sticky by customer
    share_b = (arms["first"] == "B").mean()
    assert abs(share_b - gen.SPLIT_B) <= 4 * math.sqrt(gen.SPLIT_B * (1 - gen.SPLIT_B) / CUSTOMERS)
    assert set(rows["topic"]) <= set(gen.TOPICS) and set(rows["integration"]) <= set(gen.INTEGRATIONS)
    assert rows["text"].str.len().between(60, 130).all()
    assert labels["request_id"].is_unique and labels["request_id"].isin(rows["request_id"]).all()
    low, high = gen.expected_labelled_share(1 / 3, DAYS)
    noise = 4 * math.sqrt(high * (1 - high) / REQUESTS_N)
    assert low - noise <= len(labels) / REQUESTS_N <= high + noise
    delay = (labels.set_index("request_id")["timestamp"] - rows.set_index("request_id")["timestamp"]).dropna()
    assert delay.dt.total_seconds().between(gen.FEEDBACK_DELAY_S[0], gen.FEEDBACK_DELAY_S[2]).all()
    assert mixed.feedback == len(labels)
    assert set(REQUEST_COLUMNS) == set(rows.columns) and set(FEEDBACK_COLUMNS) == set(labels.columns)


def test_summary_line_format(modules):
    bench = modules[1]
    runs = [
        bench.Run(1_000_000, 30_000, bench.OK, 41.26, 2047.6, 1900.0),
        bench.Run(10_000_000, 300_000, bench.TIMEOUT, 600.2, 9000.0, 0.0, timeout_s=600),
        bench.Run(30_000_000, 900_000, bench.FAILED, 3.0, 50.0, 40.0, exit_code=2),
    ]
    assert bench.summary_line(runs) == "growth: 1M 41.3 s / 2048 MiB, 10M timeout after 600 s, 30M failed (exit 2)"
    assert bench.summary_line(runs[:1]) == "growth: 1M 41.3 s / 2048 MiB"
    lines = bench.conclusion(runs)
    assert lines[0] == "bar at 10M: timeout after 600 s; wall <= 60 s MISSED, peak <= 1024 MiB MISSED"
    assert lines[-1] == bench.summary_line(runs)
    assert bench.row_line(runs[0], "4.2").split()[:7] == ["1M", "1,000,000", "30,000", "0", "4.2", "41.3", "2048"]
    assert [bench.size_label(n) for n in (100_000, 1_500_000, 2_500)] == ["100k", "1.5M", "2.5k"]
    assert [bench.customers_for(n) for n in (10_000_000, 30_000_000, 1_000_000, 5_000, 500)] == [
        300_000,
        900_000,
        30_000,
        1_000,
        500,
    ]


def test_priorities_fill_the_priority_columns_and_change_no_other(modules, tmp_path):
    gen = modules[0]
    plain = gen.write_window(tmp_path / "plain", REQUESTS_N, CUSTOMERS, days=DAYS, seed=3, max_bytes=MAX_BYTES)
    both = gen.write_window(tmp_path / "both", REQUESTS_N, CUSTOMERS, days=DAYS, seed=3, max_bytes=MAX_BYTES,
                            priorities=True)
    priority = {"priority", "priority_confidence", "shadow_priority"}
    for read, filled in ((read_requests, {"priority", "priority_confidence"}), (read_feedback, {"priority"})):
        without, with_ = read(plain.root).rows, read(both.root).rows
        assert all(_blank(without[c]).all() for c in priority & set(without))
        assert not any(_blank(with_[c]).any() for c in filled)
        others = [c for c in without if c not in priority]
        pd.testing.assert_frame_equal(with_[others], without[others])
    requests = read_requests(both.root).rows
    assert set(requests["priority"]) == set(gen.PRIORITIES) and (requests["shadow_priority"] == "").all()


def _blank(column: pd.Series) -> pd.Series:
    """Empty as the reader gives it: '' for text, NaN for a numeric column."""
    return column.isna() | column.eq("")
