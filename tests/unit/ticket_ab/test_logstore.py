"""The log layout: day folders found by name, and retention that never takes a day the next window reads."""

from datetime import date

from retrain.tasks import report
from ticket_ab.logstore import FEEDBACK, REQUESTS, expire, partition_dir, partitions, shard_name
from ticket_ab.settings import get_settings


def _days(root, kind, *days):
    for day in days:
        folder = partition_dir(root, kind, date.fromisoformat(day))
        folder.mkdir(parents=True)
        (folder / f"{kind}-h-1-s-0001.csv").write_text("header\n")


def test_partitions_are_the_date_folders_in_range_oldest_first(tmp_path):
    _days(tmp_path, REQUESTS, "2026-11-24", "2026-11-20", "2026-11-22")
    (tmp_path / REQUESTS / "date=soon").mkdir()
    (tmp_path / REQUESTS / "notes.txt").write_text("not a partition")
    assert [d.isoformat() for d, _ in partitions(tmp_path, REQUESTS)] == ["2026-11-20", "2026-11-22", "2026-11-24"]
    assert [d.day for d, _ in partitions(tmp_path, REQUESTS, date(2026, 11, 21), date(2026, 11, 23))] == [22]
    assert partitions(tmp_path / "nowhere", REQUESTS) == []


def test_shard_names_keep_the_dash_as_the_separator():
    assert shard_name(REQUESTS, "web-1.example.com", 42, "20261124T100000000000Z", 3) == (
        "requests-web_1.example.com-42-20261124T100000000000Z-0003.csv")


def test_days_past_retention_go_from_both_logs(tmp_path):
    _days(tmp_path, REQUESTS, "2026-08-01", "2026-08-25", "2026-08-26", "2026-11-24")
    _days(tmp_path, FEEDBACK, "2026-08-01", "2026-11-24")
    removed = expire(tmp_path, 90, today=date(2026, 11, 24), keep_from=date(2026, 11, 24))
    assert sorted(p.name for p in removed) == ["date=2026-08-01", "date=2026-08-01", "date=2026-08-25"]
    assert [d.isoformat() for d, _ in partitions(tmp_path, REQUESTS)] == ["2026-08-26", "2026-11-24"]
    assert [d.isoformat() for d, _ in partitions(tmp_path, FEEDBACK)] == ["2026-11-24"]


def test_the_watermarks_day_and_later_are_kept_whatever_their_age(tmp_path):
    _days(tmp_path, REQUESTS, "2026-08-01", "2026-08-02", "2026-08-03")
    expire(tmp_path, 1, today=date(2026, 11, 24), keep_from=date(2026, 8, 2))
    assert [d.day for d, _ in partitions(tmp_path, REQUESTS)] == [2, 3]


def test_zero_days_keeps_everything(tmp_path):
    _days(tmp_path, REQUESTS, "2020-01-01")
    assert expire(tmp_path, 0, today=date(2026, 11, 24), keep_from=date(2026, 11, 24)) == []
    assert len(partitions(tmp_path, REQUESTS)) == 1


def test_the_report_task_expires_from_the_watermark_and_keeps_all_before_a_first_window(tmp_path):
    settings = get_settings(home=tmp_path, log={"retention_days": 1})
    _days(settings.logs_dir, REQUESTS, "2020-01-01", "2020-01-02")
    assert report.expire_logs(settings, None) == []
    assert [p.name for p in report.expire_logs(settings, "2020-01-02T23:59:00+00:00")] == ["date=2020-01-01"]
    assert [d.isoformat() for d, _ in partitions(settings.logs_dir, REQUESTS)] == ["2020-01-02"]
