import csv

from retrain.contracts.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests


def _row(i: int) -> list[str]:
    values = {c: "" for c in REQUEST_COLUMNS}
    values.update(timestamp=f"2026-11-24T10:00:{i:02d}+00:00", request_id=f"r{i}", variant="A",
                  split_b="0.5", mode="split", topic="access", confidence="0.9", latency_ms="2.5",
                  text=f"ticket, with comma {i}")
    return [values[c] for c in REQUEST_COLUMNS]


def _write(path, rows, header=True):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(REQUEST_COLUMNS)
        writer.writerows(rows)


def test_reads_complete_rows_with_types(tmp_path):
    path = tmp_path / "ab_logs.csv"
    _write(path, [_row(i) for i in range(3)])
    read = read_requests(path)
    assert read.malformed == 0
    assert read.rows["request_id"].tolist() == ["r0", "r1", "r2"]
    assert read.rows["latency_ms"].dtype.kind == "f"
    assert read.rows["text"].iloc[0] == "ticket, with comma 0"


def test_torn_last_line_is_counted_not_fatal(tmp_path):
    path = tmp_path / "ab_logs.csv"
    _write(path, [_row(i) for i in range(3)])
    with open(path, "a") as fh:
        fh.write("2026-11-24T10:00:09+00:00,r9,,,B")  # worker killed mid-write: no newline
    read = read_requests(path)
    assert len(read.rows) == 3
    assert read.malformed == 1


def test_wrong_field_count_and_bad_timestamp_are_skipped(tmp_path):
    path = tmp_path / "ab_logs.csv"
    bad_time = _row(5)
    bad_time[0] = "yesterday"
    _write(path, [_row(1), ["only", "three", "fields"], bad_time, _row(2)])
    read = read_requests(path)
    assert read.rows["request_id"].tolist() == ["r1", "r2"]
    assert read.malformed == 2


def test_directory_reads_rotated_files_too(tmp_path):
    _write(tmp_path / "ab_logs.csv", [_row(1)])
    _write(tmp_path / "ab_logs.2026-11-23.csv", [_row(2)])
    read = read_requests(tmp_path)
    assert sorted(read.rows["request_id"]) == ["r1", "r2"]
    assert len(read.files) == 2


def test_missing_log_is_empty_not_an_error(tmp_path):
    read = read_feedback(tmp_path / "feedback.csv")
    assert read.rows.empty and read.malformed == 0
    assert list(read.rows.columns) == list(FEEDBACK_COLUMNS)
