"""The one log reader: whole rows only (checked by their checksum), and only the days a time range needs."""

import zlib
from datetime import date

from logfiles import append_lines, append_rows

from ticket_ab.logstore import REQUESTS, partition_dir, shard_files
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests


def _row(i: int, day: str = "2026-11-24") -> list[str]:
    values = {c: "" for c in REQUEST_COLUMNS}
    values.update(timestamp=f"{day}T10:00:{i:02d}+00:00", request_id=f"r{i}", variant="A",
                  split_b="0.5", mode="split", topic="access", confidence="0.9", latency_ms="2.5",
                  text=f"ticket, with comma {i}")
    return [values[c] for c in REQUEST_COLUMNS]


def test_reads_complete_rows_with_types(tmp_path):
    append_rows(tmp_path, REQUEST_COLUMNS, [_row(i) for i in range(3)])
    read = read_requests(tmp_path)
    assert read.malformed == 0
    assert read.rows["request_id"].tolist() == ["r0", "r1", "r2"]
    assert read.rows["latency_ms"].dtype.kind == "f"
    assert read.rows["text"].iloc[0] == "ticket, with comma 0"


def test_torn_last_line_is_counted_not_fatal(tmp_path):
    (path,) = append_rows(tmp_path, REQUEST_COLUMNS, [_row(i) for i in range(3)])
    append_lines(path, "2026-11-24T10:00:09+00:00,r9,,,B")  # worker killed mid-write: no newline
    read = read_requests(tmp_path)
    assert len(read.rows) == 3
    assert read.malformed == 1


def test_a_torn_row_that_still_parses_as_csv_is_caught_by_its_checksum(tmp_path):
    (path,) = append_rows(tmp_path, REQUEST_COLUMNS, [_row(1)])
    whole = path.read_bytes().splitlines()[1]
    append_lines(path, whole[:-40].decode() + "\n",  # cut inside the text, newline from the next write
                 whole.decode().replace("access", "billing") + "\n")  # hand-edited after the fact
    read = read_requests(tmp_path)
    assert (read.malformed, read.rows["request_id"].tolist()) == (2, ["r1"])


def test_lines_without_a_checksum_and_bad_timestamps_are_skipped(tmp_path):
    bad_time = _row(5)
    bad_time[0] = "yesterday"
    append_rows(tmp_path, REQUEST_COLUMNS, [_row(1), bad_time, _row(2)])
    append_lines(shard_files(tmp_path, REQUESTS)[0], "only,three,fields\n", "\n")  # a blank line is no row
    read = read_requests(tmp_path)
    assert read.rows["request_id"].tolist() == ["r1", "r2"]
    assert read.malformed == 2


def test_every_writers_files_of_every_day_are_read_in_time_order(tmp_path):
    append_rows(tmp_path, REQUEST_COLUMNS, [_row(2), _row(1, "2026-11-25")])
    append_rows(tmp_path, REQUEST_COLUMNS, [_row(1), _row(3)])
    read = read_requests(tmp_path)
    assert read.rows["request_id"].tolist() == ["r1", "r2", "r3", "r1"]
    assert len(read.files) == 3


def test_a_time_range_opens_only_the_days_it_overlaps(tmp_path):
    append_rows(tmp_path, REQUEST_COLUMNS, [_row(i, f"2026-11-{d}") for d in (20, 22, 24) for i in range(3)])
    read = read_requests(tmp_path, since="2026-11-22T10:00:01Z", until="2026-11-23T23:00:00")
    assert read.rows["request_id"].tolist() == ["r1", "r2"]
    assert [f.parent.name for f in read.files] == ["date=2026-11-22"]


def test_a_file_from_before_a_column_was_added_reads_that_column_as_empty(tmp_path):
    older = [c for c in REQUEST_COLUMNS if c != "experiment_id"]
    body = ",".join("2026-11-24T10:00:00+00:00" if c == "timestamp" else "r0" if c == "request_id" else ""
                    for c in older).encode()
    folder = partition_dir(tmp_path, REQUESTS, date(2026, 11, 24))
    folder.mkdir(parents=True)
    (folder / "requests-old-1-x-0001.csv").write_bytes(
        ",".join([*older, "crc"]).encode() + b"\n" + body + b",%08x\n" % zlib.crc32(body))
    read = read_requests(tmp_path)
    assert (read.malformed, read.rows["request_id"].tolist(), read.rows["experiment_id"].tolist()) == (0, ["r0"], [""])


def test_missing_log_is_empty_not_an_error(tmp_path):
    read = read_feedback(tmp_path / "nowhere")
    assert read.rows.empty and read.malformed == 0
    assert list(read.rows.columns) == list(FEEDBACK_COLUMNS)


def test_lines_before_since_on_its_day_are_skipped_by_their_stamp_and_others_still_filtered(tmp_path):
    (path,) = append_rows(tmp_path, REQUEST_COLUMNS, [
        dict(zip(REQUEST_COLUMNS, _row(i), strict=True)) | {"timestamp": f"2026-11-24T10:00:{i:02d}.000+00:00"}
        for i in range(4)])
    append_lines(path, "2026-11-24T10:00:00.500+00:00,torn before since\n")
    append_rows(tmp_path, REQUEST_COLUMNS, [_row(1), _row(3)])  # another writer, another timestamp format
    read = read_requests(tmp_path, since="2026-11-24T10:00:02Z")
    assert read.rows["request_id"].tolist() == ["r2", "r3", "r3"]
    assert read.malformed == 0  # the torn line lies before the range: not part of this read
