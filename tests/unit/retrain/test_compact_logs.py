"""The DAG's `compact_logs` task: every closed day of both logs compacted, one structured line of figures."""

from datetime import UTC, datetime, timedelta

from logfiles import append_rows, row

from retrain.tasks.compact import compact_logs
from ticket_ab.logstore import FEEDBACK, REQUESTS, compacted_file, shard_files
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS, read_feedback, read_requests
from ticket_ab.settings import get_settings


def test_the_task_compacts_closed_days_of_both_logs_and_logs_their_figures(tmp_path, logs):
    settings = get_settings(home=str(tmp_path))
    today = datetime.now(UTC)
    stamps = [(today - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000+00:00") for days in (3, 0)]
    append_rows(settings.logs_dir, REQUEST_COLUMNS, [row(f"r{i}", stamp=stamp) for i, stamp in enumerate(stamps)])
    append_rows(settings.logs_dir, FEEDBACK_COLUMNS, [[stamps[0], "r0", "billing", "agent"]])
    before = read_requests(settings.logs_dir)

    figures = compact_logs(settings)

    closed = (today - timedelta(days=3)).date()
    day_files = [compacted_file(settings.logs_dir, kind, closed) for kind in (REQUESTS, FEEDBACK)]
    assert figures == {"days": 2, "rows": 2, "malformed": 0, "files_removed": 2, "failed": 0,
                       "bytes_before": figures["bytes_before"], "bytes_after": sum(f.stat().st_size for f in day_files)}
    assert [f.suffix for f in shard_files(settings.logs_dir, REQUESTS)] == [".parquet", ".csv"]  # today stays open
    assert len(read_requests(settings.logs_dir).rows) == len(before.rows) == 2
    assert read_feedback(settings.logs_dir).rows["request_id"].tolist() == ["r0"]
    (line,) = [r.getMessage() for r in logs.records if r.getMessage().startswith("compact_logs ")]
    assert "days=2 rows=2 malformed=0 files_removed=2" in line and f"bytes_after={figures['bytes_after']}" in line
