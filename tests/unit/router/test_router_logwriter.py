"""Locked single-write appends: no interleaving, no lost rows, no torn rows, across threads and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from retrain.contracts.logwriter import CsvAppender, one_line
from retrain.contracts.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests
from retrain.local import launch as services

WRITER = """
import sys, threading
from retrain.contracts.requestlog import REQUEST_COLUMNS
from retrain.contracts.logwriter import CsvAppender
path, tag, threads, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = CsvAppender(path, REQUEST_COLUMNS)
def run(t):
    i = 0
    while rows < 0 or i < rows:
        log.append({"timestamp": "2026-11-24T11:00:00.000+00:00", "request_id": f"{tag}-{t}-{i}",
                    "variant": "A", "confidence": 0.5, "text": f"{tag}, \\"quoted\\"\\nrow {i} " + "x" * 3000})
        i += 1
workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
"""


def row(request_id: str, text: str = "vpn drops") -> dict[str, object]:
    return {"timestamp": "2026-11-24T11:00:00.000+00:00", "request_id": request_id, "variant": "B",
            "model_alias": "challenger", "model_version": "2", "split_b": 0.5, "mode": "split", "topic": "network",
            "confidence": 0.91, "latency_ms": 2.5, "text": text}


def test_new_file_gets_the_header_once_and_rows_read_back(tmp_path: Path):
    path = tmp_path / "logs" / "ab_logs.csv"
    log = CsvAppender(path, REQUEST_COLUMNS)
    log.append(row("r1"))
    log.append(row("r2"))
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(REQUEST_COLUMNS)
    assert len(lines) == 3
    read = read_requests(path)
    assert read.malformed == 0
    assert list(read.rows["request_id"]) == ["r1", "r2"]
    assert read.rows["confidence"].tolist() == [0.91, 0.91]


def test_text_with_newlines_quotes_and_control_characters_stays_on_one_line(tmp_path: Path):
    path = tmp_path / "ab_logs.csv"
    text = 'line one\r\nline "two", with comma\ttab\x00nul\u2028sep\x85next\n\n'
    CsvAppender(path, REQUEST_COLUMNS).append(row("r1", text))
    assert len(path.read_bytes().splitlines()) == 2
    read = read_requests(path)
    assert read.malformed == 0
    assert read.rows.loc[0, "text"] == 'line one line "two", with comma tab nul sep next'
    assert read.rows.loc[0, "text"] == one_line(text)


def test_eight_threads_append_exactly_2000_parseable_rows(tmp_path: Path):
    path = tmp_path / "ab_logs.csv"
    log = CsvAppender(path, REQUEST_COLUMNS)

    def run(t: int) -> None:
        for i in range(250):
            log.append(row(f"t{t}-{i}", f"thread {t}, row {i}\n" + "y" * (i * 37 % 5000)))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read = read_requests(path)
    assert read.malformed == 0
    assert len(read.rows) == 2000
    assert set(read.rows["request_id"]) == {f"t{t}-{i}" for t in range(8) for i in range(250)}


def test_processes_and_threads_appending_together_lose_and_tear_nothing(tmp_path: Path):
    path = tmp_path / "ab_logs.csv"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{n}", "3", "150"], env=services.python_env())
             for n in range(4)]
    local = CsvAppender(path, REQUEST_COLUMNS)
    for i in range(200):
        local.append(row(f"parent-{i}"))
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    read = read_requests(path)
    assert read.malformed == 0
    assert len(read.rows) == 4 * 3 * 150 + 200
    assert read.rows["request_id"].is_unique
    assert path.read_text().count(",".join(REQUEST_COLUMNS)) == 1


def test_a_writer_killed_mid_stream_leaves_no_torn_row(tmp_path: Path):
    path = tmp_path / "ab_logs.csv"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "victim", "2", "-1"], env=services.python_env())
    deadline = time.monotonic() + 30
    while not path.exists() or path.stat().st_size < 300 * 3100:
        assert proc.poll() is None and time.monotonic() < deadline, "writer did not produce rows"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = read_requests(path)
    assert killed.malformed == 0
    assert len(killed.rows) >= 300
    CsvAppender(path, REQUEST_COLUMNS).append(row("after-kill"))
    after = read_requests(path)
    assert (after.malformed, len(after.rows)) == (0, len(killed.rows) + 1)


def test_a_truncated_last_line_is_skipped_and_does_not_swallow_the_next_row(tmp_path: Path):
    path = tmp_path / "ab_logs.csv"
    log = CsvAppender(path, REQUEST_COLUMNS)
    log.append(row("r1"))
    with open(path, "a") as fh:
        fh.write("2026-11-24T11:00:01.000+00:00,r-torn,t,c,A,champion,1,0.5,split,net")
    torn = read_requests(path)
    assert (torn.malformed, list(torn.rows["request_id"])) == (1, ["r1"])
    log.append(row("r2"))
    healed = read_requests(path)
    assert list(healed.rows["request_id"]) == ["r1", "r2"]
    assert healed.malformed == 1


def test_a_log_moved_away_is_recreated_with_a_header(tmp_path: Path):
    path = tmp_path / "feedback.csv"
    log = CsvAppender(path, FEEDBACK_COLUMNS)
    log.append({"timestamp": "2026-11-24T11:00:00+00:00", "request_id": "r1", "label": "billing", "source": "api"})
    path.rename(tmp_path / "feedback-archived.csv")
    log.append({"timestamp": "2026-11-24T11:00:01+00:00", "request_id": "r2", "label": "email", "source": "api"})
    assert list(read_feedback(path).rows["request_id"]) == ["r2"]
    assert list(read_feedback(tmp_path / "feedback-archived.csv").rows["request_id"]) == ["r1"]
