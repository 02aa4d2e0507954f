"""Compaction: a closed day's CSV shards become one Parquet day file, and readers cannot tell the difference."""

import shutil
from datetime import date

import pandas as pd
import pytest
from experiment_logs import LogSpec, Phase, write_ab_logs
from logfiles import append_lines, append_rows, row

from ticket_ab import compact as compaction
from ticket_ab import requestlog
from ticket_ab.compact import CompactionError, compact_closed, compact_day
from ticket_ab.dayfile import encode_day_file, read_day_file
from ticket_ab.logstore import FEEDBACK, KINDS, REQUESTS, compacted_file, csv_shards, expire, partition_dir, partitions
from ticket_ab.logwriter import encode_line
from ticket_ab.requestlog import REQUEST_COLUMNS, read_feedback, read_requests

DAY = date(2026, 11, 24)
TODAY = date(2026, 12, 4)


def _stamp(i: int, day: str = "2026-11-24") -> str:
    return f"{day}T{8 + i % 12:02d}:{i % 60:02d}:{i % 7:02d}.{i:03d}+00:00"


def _writers(root, count: int = 3, rows: int = 40, day: str = "2026-11-24") -> list:
    """`count` writers' shards of one day (router-format stamps, interleaved in time); their files."""
    return [file for w in range(count) for file in append_rows(
        root, REQUEST_COLUMNS, [row(f"w{w}-{i}", f"ticket {i}, from writer {w}", _stamp(i * count + w, day))
                                for i in range(rows)])]


def _ab_logs(root) -> None:
    """Both logs over two days (not the router's stamp format), plus a second writer's router-format rows."""
    write_ab_logs(root, LogSpec(phases=[Phase(2000), Phase(1500, mode="shadow")], step_s=30, feedback_rate=0.6))
    _writers(root, count=1, rows=60)


def _snapshot(root, since=None, until=None) -> dict:
    return {kind: read(root, since, until) for kind, read in ((REQUESTS, read_requests), (FEEDBACK, read_feedback))}


def test_a_day_of_several_shards_becomes_one_parquet_file_with_equal_counts_and_no_csvs(tmp_path):
    shards = _writers(tmp_path)
    expected = read_requests(tmp_path)

    done = compact_day(tmp_path, REQUESTS, DAY, TODAY)

    folder = partition_dir(tmp_path, REQUESTS, DAY)
    assert sorted(folder.iterdir()) == [compacted_file(tmp_path, REQUESTS, DAY)]
    assert (done.rows, done.malformed, done.removed) == (len(expected.rows), 0, len(shards))
    assert done.bytes_after == done.path.stat().st_size
    assert len(read_day_file(done.path, REQUEST_COLUMNS).rows) == len(expected.rows)


def test_compaction_reports_the_bytes_of_the_shards_it_replaced(tmp_path):
    shards = _writers(tmp_path)
    sizes = sum(s.stat().st_size for s in shards)
    done = compact_day(tmp_path, REQUESTS, DAY, TODAY)
    assert (done.bytes_before, done.bytes_after) == (sizes, done.path.stat().st_size)


def test_compaction_drops_a_torn_line_and_a_corrupted_checksum_line_and_counts_them(tmp_path):
    first, second, _ = _writers(tmp_path, rows=5)
    whole = second.read_bytes().splitlines()[1]
    append_lines(second, whole.decode().replace("network", "billing") + "\n")  # edited: its checksum no longer fits
    append_lines(first, _stamp(99)[:20])  # a write cut short
    before = read_requests(tmp_path)

    done = compact_day(tmp_path, REQUESTS, DAY, TODAY)

    kept = read_day_file(done.path, REQUEST_COLUMNS).rows
    assert (done.rows, done.malformed) == (15, 2)
    assert set(kept["topic"]) == {"network"} and len(kept) == len(before.rows)
    after = read_requests(tmp_path)
    assert (after.malformed, len(after.rows)) == (before.malformed, len(before.rows)) == (2, 15)


@pytest.mark.parametrize(("since", "until"), [
    (None, None),
    ("2026-11-24T11:30:00Z", "2026-11-24T14:07:00.0005Z"),  # the middle of a compacted day
    ("2026-11-24T20:00:00Z", "2026-11-25T03:00:00Z"),  # from a compacted day into one still in CSV
    ("2026-11-25T01:00:00Z", None),
])
def test_readers_give_equal_frames_on_the_csv_days_and_the_compacted_days(tmp_path, since, until):
    _ab_logs(tmp_path)
    shard = csv_shards(partition_dir(tmp_path, REQUESTS, DAY), REQUESTS)[0]
    impossible = encode_line(REQUEST_COLUMNS, row("r-hour-25", stamp="2026-11-24T25:00:00.000+00:00"))
    append_lines(shard, impossible.decode(), "2026-11-24T12:00:00.000+00:00,torn")  # malformed in some ranges only
    before = _snapshot(tmp_path, since, until)

    run = compact_closed(tmp_path, date(2026, 11, 26))  # the 24th is closed, the 25th is yesterday

    assert {(d.kind, d.day) for d in run.days} == {(REQUESTS, DAY), (FEEDBACK, DAY)} and not run.failed
    after = _snapshot(tmp_path, since, until)
    for kind in KINDS:
        pd.testing.assert_frame_equal(after[kind].rows, before[kind].rows)
        assert after[kind].malformed == before[kind].malformed
    assert len(before[REQUESTS].rows) > 0


def test_a_compacted_day_reads_the_same_numbers_timestamps_and_column_types_as_its_csvs(tmp_path):
    _ab_logs(tmp_path)
    before = read_requests(tmp_path).rows
    compact_closed(tmp_path, TODAY)
    after = read_requests(tmp_path).rows
    assert after.dtypes.to_dict() == before.dtypes.to_dict()
    assert str(after["timestamp"].dt.tz) == "UTC" and after["latency_ms"].dtype.kind == "f"
    assert after["timestamp"].is_monotonic_increasing


def test_an_open_day_is_not_compacted(tmp_path):
    _writers(tmp_path, day="2026-11-24")
    _writers(tmp_path, day="2026-11-25")
    today = date(2026, 11, 25)  # the 24th is yesterday: a writer may still append to it

    assert compact_closed(tmp_path, today).days == []
    with pytest.raises(ValueError, match="open"):
        compact_day(tmp_path, REQUESTS, DAY, today)
    assert all(csv_shards(folder, REQUESTS) for _, folder in partitions(tmp_path, REQUESTS))
    assert not compacted_file(tmp_path, REQUESTS, DAY).exists()


def test_running_twice_is_running_once(tmp_path):
    _ab_logs(tmp_path)
    once = compact_closed(tmp_path, TODAY)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    again = compact_closed(tmp_path, TODAY)

    assert len(once.days) == 4 and again.days == [] and again.failed == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


def test_a_day_with_both_its_parquet_file_and_leftover_csvs_reads_without_duplicates(tmp_path):
    shards = _writers(tmp_path)
    kept = tmp_path / "kept"
    kept.mkdir()
    copies = [shutil.copy2(s, kept / s.name) for s in shards]
    before = read_requests(tmp_path)
    compact_day(tmp_path, REQUESTS, DAY, TODAY)
    for copy, shard in zip(copies, shards, strict=True):  # a crash after the rename, before the removal
        shutil.copy2(copy, shard)

    during = read_requests(tmp_path)

    pd.testing.assert_frame_equal(during.rows, before.rows)
    assert during.files == [compacted_file(tmp_path, REQUESTS, DAY)]
    cleanup = compact_day(tmp_path, REQUESTS, DAY, TODAY)
    assert (cleanup.removed, cleanup.rows) == (len(shards), len(before.rows))
    assert csv_shards(partition_dir(tmp_path, REQUESTS, DAY), REQUESTS) == []


def test_a_shard_the_day_file_does_not_hold_is_read_beside_it_and_folded_in_next_time(tmp_path):
    _writers(tmp_path)
    compact_day(tmp_path, REQUESTS, DAY, TODAY)
    _writers(tmp_path, count=1, rows=4)  # a writer whose clock lagged a day and a half
    both = read_requests(tmp_path)
    assert len(both.rows) == 124 and len(both.files) == 2

    done = compact_day(tmp_path, REQUESTS, DAY, TODAY)

    assert (done.rows, done.removed) == (124, 1)
    pd.testing.assert_frame_equal(read_requests(tmp_path).rows, both.rows)


def test_a_reader_whose_shards_are_compacted_away_while_it_reads_gets_the_rows_from_the_day_file(tmp_path,
                                                                                                monkeypatch):
    _writers(tmp_path)
    expected = read_requests(tmp_path)
    listing, listed = requestlog.day_files, []

    def list_then_compact(folder, kind):
        files = listing(folder, kind)
        listed.append(files)
        if len(listed) == 1:  # between the reader's first listing and its reads
            compact_day(tmp_path, REQUESTS, DAY, TODAY)
        return files

    monkeypatch.setattr(requestlog, "day_files", list_then_compact)
    during = read_requests(tmp_path)

    pd.testing.assert_frame_equal(during.rows, expected.rows)
    assert during.files == [compacted_file(tmp_path, REQUESTS, DAY)]


def test_a_day_file_that_would_not_read_back_whole_is_never_put_in_place(tmp_path, monkeypatch):
    shards = _writers(tmp_path)
    monkeypatch.setattr(compaction, "encode_day_file",
                        lambda rows, shards, dropped: encode_day_file(rows.iloc[1:], shards, dropped))

    with pytest.raises(CompactionError, match="reads back 119 rows, not the 120"):
        compact_day(tmp_path, REQUESTS, DAY, TODAY)

    assert csv_shards(partition_dir(tmp_path, REQUESTS, DAY), REQUESTS) == shards
    assert not compacted_file(tmp_path, REQUESTS, DAY).exists()
    assert sorted(partition_dir(tmp_path, REQUESTS, DAY).iterdir()) == shards
    assert "requests 2026-11-24: " in compact_closed(tmp_path, TODAY).failed[0]


def test_retention_removes_compacted_days_too(tmp_path):
    _writers(tmp_path, day="2026-08-01")
    _writers(tmp_path, day="2026-11-24")
    compact_closed(tmp_path, TODAY)
    assert compacted_file(tmp_path, REQUESTS, date(2026, 8, 1)).exists()
    gone = expire(tmp_path, 90, TODAY, keep_from=TODAY)
    assert gone == [partition_dir(tmp_path, REQUESTS, date(2026, 8, 1))]
    assert [d for d, _ in partitions(tmp_path, REQUESTS)] == [DAY]
