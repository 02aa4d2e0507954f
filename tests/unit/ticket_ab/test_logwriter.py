"""One writer per file: no interleaving, no lost rows, no torn rows, and a failed write leaves no trace.

What needs other processes (writers in parallel, one killed mid-row, a full disk) is in
tests/integration/ticket_ab/test_logwriter_processes.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from logfiles import row

from ticket_ab.logstore import FEEDBACK, REQUESTS, shard_files
from ticket_ab.logwriter import LogWriteError, ShardedLog, one_line
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests


def test_a_new_file_in_the_rows_day_folder_gets_the_header_once_and_rows_read_back(tmp_path: Path):
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS, host="web-1")
    log.append(row("r1"))
    log.append(row("r2"))
    (path,) = log.files()
    assert path.parent == tmp_path / "requests" / "date=2026-11-24"
    assert path.name.startswith(f"requests-web_1-{os.getpid()}-") and path.name.endswith("-0001.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(REQUEST_COLUMNS) + ",crc"
    assert len(lines) == 3
    read = read_requests(tmp_path)
    assert read.malformed == 0
    assert list(read.rows["request_id"]) == ["r1", "r2"]
    assert read.rows["confidence"].tolist() == [0.91, 0.91]


def test_text_with_newlines_quotes_and_control_characters_stays_on_one_line(tmp_path: Path):
    text = 'line one\r\nline "two", with comma\ttab\x00nul\u2028sep\x85next\n\n'
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)
    log.append(row("r1", text))
    assert len(log.files()[0].read_bytes().splitlines()) == 2
    read = read_requests(tmp_path)
    assert read.malformed == 0
    assert read.rows.loc[0, "text"] == 'line one line "two", with comma tab nul sep next'
    assert read.rows.loc[0, "text"] == one_line(text)


def test_eight_threads_append_exactly_2000_parseable_rows(tmp_path: Path):
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)

    def run(t: int) -> None:
        for i in range(250):
            log.append(row(f"t{t}-{i}", f"thread {t}, row {i}\n" + "y" * (i * 37 % 5000)))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read = read_requests(tmp_path)
    assert read.malformed == 0
    assert len(read.rows) == 2000
    assert set(read.rows["request_id"]) == {f"t{t}-{i}" for t in range(8) for i in range(250)}


def test_a_torn_last_line_is_skipped_and_cannot_swallow_another_writers_row(tmp_path: Path):
    crashed = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)
    crashed.append(row("r1"))
    with open(crashed.files()[0], "a") as fh:
        fh.write('2026-11-24T11:00:01.000+00:00,r-torn,t,c,A,champion,1,0.5,split,,net,0.9,1,,,,,"unclosed')
    torn = read_requests(tmp_path)
    assert (torn.malformed, list(torn.rows["request_id"])) == (1, ["r1"])
    ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS).append(row("r2", stamp="2026-11-24T11:00:02.000+00:00"))
    healed = read_requests(tmp_path)
    assert list(healed.rows["request_id"]) == ["r1", "r2"]
    assert healed.malformed == 1


def test_rows_roll_over_to_their_own_day_and_past_the_size_limit(tmp_path: Path):
    log = ShardedLog(tmp_path, FEEDBACK, FEEDBACK_COLUMNS, max_bytes=1024)
    for i in range(100):
        log.append({"timestamp": f"2026-11-2{4 + i // 50}T23:59:{i % 50:02d}+00:00", "request_id": f"r{i}",
                    "label": "billing", "source": "api"})
    files = shard_files(tmp_path, FEEDBACK)
    assert {f.parent.name for f in files} == {"date=2026-11-24", "date=2026-11-25"}
    assert len(files) > 2 and all(f.stat().st_size <= 1024 for f in files)
    read = read_feedback(tmp_path)
    assert (read.malformed, read.rows["request_id"].tolist()) == (0, [f"r{i}" for i in range(100)])


def test_a_row_stamped_before_midnight_after_one_stamped_after_still_goes_to_its_day(tmp_path: Path):
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)
    log.append(row("late", stamp="2026-11-25T00:00:00.001+00:00"))
    log.append(row("early", stamp="2026-11-24T23:59:59.999+00:00"))
    assert [f.parent.name for f in shard_files(tmp_path, REQUESTS)] == ["date=2026-11-24", "date=2026-11-25"]
    assert read_requests(tmp_path, until="2026-11-24T23:59:59.999Z").rows["request_id"].tolist() == ["early"]


def test_a_row_for_a_third_older_day_is_written_to_its_own_file(tmp_path: Path):
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)
    for name, stamp in (("d24", "2026-11-24T10:00:00.000+00:00"), ("d25", "2026-11-25T10:00:00.000+00:00"),
                        ("d23", "2026-11-23T10:00:00.000+00:00"), ("d25b", "2026-11-25T11:00:00.000+00:00")):
        log.append(row(name, stamp=stamp))
    read = read_requests(tmp_path)
    assert (read.malformed, read.rows["request_id"].tolist()) == (0, ["d23", "d24", "d25", "d25b"])


def test_an_unwritable_log_root_raises_and_recovers_once_fixed(tmp_path: Path):
    (tmp_path / "requests").write_text("a file where the log folder should be")
    log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)
    with pytest.raises(LogWriteError, match="requests log not writable"):
        log.append(row("lost"))
    assert log.failures == 1 and "requests log not writable" in log.check()
    (tmp_path / "requests").unlink()
    assert log.check() is None
    log.append(row("r1"))
    assert read_requests(tmp_path).rows["request_id"].tolist() == ["r1"]


def test_log_files_are_readable_by_their_group_only_and_folders_enterable_by_it(tmp_path: Path):
    umask = os.umask(0o022)
    try:
        log = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)
        log.append(row("r1"))
        log.close()
    finally:
        os.umask(umask)
    (path,) = shard_files(tmp_path, REQUESTS)
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.parent.stat().st_mode & 0o777 == 0o750
