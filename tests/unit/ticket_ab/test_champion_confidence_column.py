"""`champion_confidence`, the request-log column added for the A/B report's CUPAC covariate: files written before
it (CSV shards and Parquet day files) read it as blank beside files that have it, in the checked reader and in
the DuckDB views alike, and compaction carries it into the day file."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest
from logfiles import dated_day_file, dated_shard

from ticket_ab import logscan
from ticket_ab.compact import compact_day
from ticket_ab.dayfile import read_day_file
from ticket_ab.logstore import REQUESTS, compacted_file, csv_shards, partition_dir
from ticket_ab.requestlog import NUMERIC, REQUEST_COLUMNS, read_requests

COLUMN = "champion_confidence"
OLDER = tuple(c for c in REQUEST_COLUMNS if c != COLUMN)  # the columns of files written before it
DAY, LATER, TODAY = date(2026, 11, 20), date(2026, 11, 21), date(2026, 12, 4)


def _by_id(rows: pd.DataFrame) -> dict[str, float]:
    return dict(zip(rows["request_id"], rows[COLUMN], strict=True))


def test_it_is_a_request_column_read_as_a_number():
    assert COLUMN in REQUEST_COLUMNS and COLUMN in NUMERIC


def test_a_shard_from_before_the_column_reads_it_as_blank_beside_a_shard_with_it(tmp_path):
    dated_shard(tmp_path, OLDER, DAY, ["old-0", "old-1"])
    dated_shard(tmp_path, REQUEST_COLUMNS, DAY, ["new-0"], {COLUMN: 0.734512})
    read = read_requests(tmp_path)
    assert read.malformed == 0 and read.rows[COLUMN].dtype.kind == "f"
    got = _by_id(read.rows)
    assert math.isnan(got["old-0"]) and math.isnan(got["old-1"]) and got["new-0"] == 0.734512


def test_a_day_file_from_before_the_column_reads_it_as_blank_beside_a_day_with_it(tmp_path):
    dated_day_file(tmp_path, OLDER, DAY, ["old-0"])
    dated_shard(tmp_path, REQUEST_COLUMNS, LATER, ["new-0"], {COLUMN: 0.5})
    assert read_day_file(compacted_file(tmp_path, REQUESTS, DAY), REQUEST_COLUMNS).rows[COLUMN].tolist() == [""]
    read = read_requests(tmp_path)
    got = _by_id(read.rows)
    assert read.malformed == 0 and math.isnan(got["old-0"]) and got["new-0"] == 0.5


def test_compaction_keeps_the_column_and_blanks_the_rows_of_shards_without_it(tmp_path):
    dated_shard(tmp_path, OLDER, DAY, ["old-0"])
    dated_shard(tmp_path, REQUEST_COLUMNS, DAY, ["new-0", "new-1"], {COLUMN: 0.912345})
    before = read_requests(tmp_path).rows

    compact_day(tmp_path, REQUESTS, DAY, TODAY)

    assert not csv_shards(partition_dir(tmp_path, REQUESTS, DAY), REQUESTS)
    stored = read_day_file(compacted_file(tmp_path, REQUESTS, DAY), REQUEST_COLUMNS).rows
    assert dict(zip(stored["request_id"], stored[COLUMN], strict=True)) == {"old-0": "", "new-0": "0.912345",
                                                                           "new-1": "0.912345"}
    pd.testing.assert_frame_equal(read_requests(tmp_path).rows, before)


def test_a_day_file_without_the_column_extended_by_a_shard_with_it_keeps_both(tmp_path):
    dated_day_file(tmp_path, OLDER, DAY, ["old-0"])
    dated_shard(tmp_path, REQUEST_COLUMNS, DAY, ["late-0"], {COLUMN: 0.25})  # a late writer, folded in next time

    compact_day(tmp_path, REQUESTS, DAY, TODAY)

    got = _by_id(read_requests(tmp_path).rows)
    assert math.isnan(got["old-0"]) and got["late-0"] == 0.25


@pytest.mark.parametrize("with_column", [(True, False), (False, True), (False, False), (True, True)],
                         ids=["old-then-new", "new-then-old", "only-old", "only-new"])
def test_the_duckdb_views_read_it_as_text_blank_where_a_file_lacks_it(tmp_path, with_column):
    """ticket_ab.logscan unions day files and shards by name: a file without the column gives '' (as the CSV reader's
    blank), whichever files of a window have it."""
    for day, has in zip((DAY, LATER), with_column, strict=True):
        dated_day_file(tmp_path, REQUEST_COLUMNS if has else OLDER, day, [f"{day.day}-day"])
        if has:  # a day file with the column holds a value: written through compaction, as the router would
            dated_shard(tmp_path, REQUEST_COLUMNS, day, [f"{day.day}-shard"], {COLUMN: 0.625})
            compact_day(tmp_path, REQUESTS, day, TODAY)
        dated_shard(tmp_path, REQUEST_COLUMNS if has else OLDER, date(2026, 12, 3), [f"{day.day}-open"],
                    {COLUMN: 0.375} if has else None)
    expected = read_requests(tmp_path).rows
    with logscan.connect(256) as con:
        scan = logscan.files(con, tmp_path, tmp_path / "no-feedback", None)
        got = dict(con.execute(f"SELECT request_id, {COLUMN} FROM raw_requests").fetchall())
    assert scan.malformed[REQUESTS] == 0
    assert got == {rid: "" if math.isnan(value) else f"{value:g}" for rid, value in _by_id(expected).items()}
