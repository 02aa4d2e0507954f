"""The log watcher counts what the DAG's window will read, and is due from TICKET_AB_MIN_WINDOW tickets on."""

from __future__ import annotations

import pandas as pd
from logfiles import append_rows

from retrain.tasks import window as win
from retrain.tasks.watch import count_new_tickets
from ticket_ab.requestlog import REQUEST_COLUMNS
from ticket_ab.settings import get_settings


def _requests(settings, stamps: list[str], text: str = "vpn is down") -> None:
    rows = []
    for i, stamp in enumerate(stamps):
        values = {c: "" for c in REQUEST_COLUMNS}
        values.update(timestamp=stamp, request_id=f"r{stamp}-{i}", topic="network", text=text, split_b="0.5",
                      confidence="0.9", latency_ms="1")
        rows.append([values[c] for c in REQUEST_COLUMNS])
    append_rows(settings.logs_dir, REQUEST_COLUMNS, rows)


def test_watcher_is_due_once_min_window_tickets_arrived_after_the_watermark(tmp_path):
    settings = get_settings(home=tmp_path, drift={"min_window": 3}, log={"settle_s": 0})
    _requests(settings, ["2026-03-01T10:00:00+00:00", "2026-03-01T10:00:01+00:00"])
    win.save_watermark(win.watermark_path(settings.airflow_dir),
                       win.Watermark(requests_until="2026-03-01T10:00:00+00:00"), run_id="manual__1")
    watched = count_new_tickets(settings)
    assert (watched.new_tickets, watched.due) == (1, False)
    assert "retrain not due" in watched.reason()

    _requests(settings, ["2026-03-01T10:00:02+00:00", "2026-03-01T10:00:03+00:00"])
    watched = count_new_tickets(settings)
    assert (watched.new_tickets, watched.due) == (3, True)
    assert watched.to_dict()["due"] is True


def test_watcher_skips_tickets_the_window_would_skip(tmp_path):
    settings = get_settings(home=tmp_path, drift={"min_window": 1}, log={"settle_s": 0})
    _requests(settings, ["2026-03-01T10:00:00+00:00"], text="  ")
    assert count_new_tickets(settings).new_tickets == 0


def test_watcher_waits_for_rows_to_settle(tmp_path):
    settings = get_settings(home=tmp_path, drift={"min_window": 1}, log={"settle_s": 3600})
    now = pd.Timestamp.now(tz="UTC").isoformat()
    _requests(settings, [now])
    assert count_new_tickets(settings).new_tickets == 0
