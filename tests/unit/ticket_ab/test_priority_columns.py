"""`priority`, `priority_confidence` and `shadow_priority`, the request-log columns of the priority head: files written
before them (CSV shards and Parquet day files) read them as blank beside files that have them, in the checked reader
and in the DuckDB views alike, and compaction carries them into the day file (as `champion_confidence` before them:
tests/unit/ticket_ab/test_champion_confidence_column.py)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from logfiles import dated_day_file, dated_shard

from ticket_ab import logscan
from ticket_ab.compact import compact_day
from ticket_ab.dayfile import read_day_file
from ticket_ab.logstore import REQUESTS, compacted_file, csv_shards, partition_dir
from ticket_ab.requestlog import NUMERIC, REQUEST_COLUMNS, read_requests

NEW = {"priority": "urgent", "priority_confidence": 0.734512, "shadow_priority": "low"}  # a two-head answer's values
OLDER = tuple(c for c in REQUEST_COLUMNS if c not in NEW)  # the columns of files written before them
DAY, LATER, TODAY = date(2026, 11, 20), date(2026, 11, 21), date(2026, 12, 4)


def _values(rows: pd.DataFrame) -> dict[str, tuple]:
    """Each request's three values, a blank confidence as None (NaN never equals itself)."""
    confidence = rows["priority_confidence"].astype(object).where(rows["priority_confidence"].notna(), None)
    return dict(zip(rows["request_id"], zip(rows["priority"], confidence, rows["shadow_priority"], strict=True),
                    strict=True))


BLANK, GIVEN = ("", None, ""), tuple(NEW.values())


def test_they_are_request_columns_before_the_text_and_the_confidence_reads_as_a_number():
    assert set(NEW) <= set(REQUEST_COLUMNS) and REQUEST_COLUMNS[-1] == "text"
    assert "priority_confidence" in NUMERIC and not {"priority", "shadow_priority"} & set(NUMERIC)


def test_a_shard_from_before_the_columns_reads_them_as_blank_beside_a_shard_with_them(tmp_path):
    dated_shard(tmp_path, OLDER, DAY, ["old-0", "old-1"])
    dated_shard(tmp_path, REQUEST_COLUMNS, DAY, ["new-0"], NEW)
    read = read_requests(tmp_path)
    assert read.malformed == 0 and read.rows["priority_confidence"].dtype.kind == "f"
    assert _values(read.rows) == {"old-0": BLANK, "old-1": BLANK, "new-0": GIVEN}


def test_a_day_file_from_before_the_columns_reads_them_as_blank_beside_a_day_with_them(tmp_path):
    dated_day_file(tmp_path, OLDER, DAY, ["old-0"])
    dated_shard(tmp_path, REQUEST_COLUMNS, LATER, ["new-0"], NEW)
    stored = read_day_file(compacted_file(tmp_path, REQUESTS, DAY), REQUEST_COLUMNS).rows
    assert stored[list(NEW)].values.tolist() == [["", "", ""]]
    read = read_requests(tmp_path)
    assert read.malformed == 0 and _values(read.rows) == {"old-0": BLANK, "new-0": GIVEN}


def test_compaction_keeps_the_columns_and_blanks_the_rows_of_shards_without_them(tmp_path):
    dated_shard(tmp_path, OLDER, DAY, ["old-0"])
    dated_shard(tmp_path, REQUEST_COLUMNS, DAY, ["new-0", "new-1"], NEW)
    before = read_requests(tmp_path).rows

    compact_day(tmp_path, REQUESTS, DAY, TODAY)

    assert not csv_shards(partition_dir(tmp_path, REQUESTS, DAY), REQUESTS)
    stored = read_day_file(compacted_file(tmp_path, REQUESTS, DAY), REQUEST_COLUMNS).rows.set_index("request_id")
    assert stored.loc[["old-0", "new-0", "new-1"], list(NEW)].values.tolist() == [
        ["", "", ""], ["urgent", "0.734512", "low"], ["urgent", "0.734512", "low"]]
    pd.testing.assert_frame_equal(read_requests(tmp_path).rows, before)


def test_a_day_file_without_the_columns_extended_by_a_shard_with_them_keeps_both(tmp_path):
    dated_day_file(tmp_path, OLDER, DAY, ["old-0"])
    dated_shard(tmp_path, REQUEST_COLUMNS, DAY, ["late-0"], NEW)  # a late writer, folded in next time

    compact_day(tmp_path, REQUESTS, DAY, TODAY)

    assert _values(read_requests(tmp_path).rows) == {"old-0": BLANK, "late-0": GIVEN}


@pytest.mark.parametrize("with_columns", [(True, False), (False, True), (False, False), (True, True)],
                         ids=["old-then-new", "new-then-old", "only-old", "only-new"])
def test_the_duckdb_views_read_them_as_text_blank_where_a_file_lacks_them(tmp_path, with_columns):
    """ticket_ab.logscan unions day files and shards by name: a file without the columns gives '' (as the CSV
    reader's blank), whichever files of a window have them."""
    for day, has in zip((DAY, LATER), with_columns, strict=True):
        dated_day_file(tmp_path, REQUEST_COLUMNS if has else OLDER, day, [f"{day.day}-day"])
        if has:  # a day file with the columns holds values: written through compaction, as the router would
            dated_shard(tmp_path, REQUEST_COLUMNS, day, [f"{day.day}-shard"], NEW)
            compact_day(tmp_path, REQUESTS, day, TODAY)
        dated_shard(tmp_path, REQUEST_COLUMNS if has else OLDER, date(2026, 12, 3), [f"{day.day}-open"],
                    NEW if has else None)
    expected = _values(read_requests(tmp_path).rows)
    with logscan.connect(256) as con:
        scan = logscan.files(con, tmp_path, tmp_path / "no-feedback", None)
        got = {rid: (p, c, s) for rid, p, c, s in con.execute(
            "SELECT request_id, priority, priority_confidence, shadow_priority FROM raw_requests").fetchall()}
    assert scan.malformed[REQUESTS] == 0
    assert got == {rid: (p, "" if c is None else f"{c:g}", s) for rid, (p, c, s) in expected.items()}
    assert any(value == GIVEN for value in expected.values()) == any(with_columns)
