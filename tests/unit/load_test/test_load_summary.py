"""The load test's numbers and its progress bar, from hand-made results."""

import io

import pytest

from load_test.client import Result, Run
from load_test.progress import Progress, render
from load_test.summary import format_summary, percentiles, summarize


def test_percentiles_interpolate_linearly():
    assert percentiles(list(range(1, 101))) == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}


def results() -> list[Result]:
    ok = [Result(i, 200, "", 10.0 + i, variant="AB"[i % 2], request_id=f"r{i}") for i in range(8)]
    ok[0] = Result(0, 200, "", 10.0, "A", "r0", True, 202)
    ok[1] = Result(1, 200, "", 11.0, "B", "r1", True, 202)
    ok[2] = Result(2, 200, "", 12.0, "A", "r2", True, 401, "HTTP 401: unauthorized")
    return ok + [Result(8, 503, "HTTP 503: no_champion", 3.0, feedback_planned=True),
                 Result(9, None, "connection refused", 1.0)]


def test_summary_counts_statuses_arms_feedback_and_errors():
    s = summarize(Run(results(), elapsed_s=2.0, stopped_by="count"), planned=10, max_error_rate=0.25)
    assert (s["requests"], s["answered"], s["requests_per_s"]) == (10, 8, 5.0)
    assert s["status_counts"] == {"200": 8, "503": 1, "no response (connection refused)": 1}
    assert s["arms"] == {"A": {"requests": 4, "share": 0.5}, "B": {"requests": 4, "share": 0.5}}
    assert s["feedback"] == {"planned": 4, "sent": 3, "accepted": 2, "share_of_answered": 0.25,
                             "status_counts": {"202": 2, "401": 1}}
    assert (s["errors"], s["calls"]) == (3, 13)  # 2 failed predictions + 1 refused feedback
    assert s["error_rate"] == pytest.approx(3 / 13, abs=1e-6)
    assert s["passed"] is True
    assert s["latency_ms"]["p50"] == pytest.approx(13.5)  # answered requests only: 10, 11, 12, 13..17
    assert s["top_errors"]["HTTP 401: unauthorized"] == 1


def test_summary_fails_above_the_allowed_error_rate_or_with_nothing_sent():
    assert not summarize(Run(results(), 2.0, "count"), planned=10, max_error_rate=0.01)["passed"]
    assert not summarize(Run([], 0.1, "time"), planned=10, max_error_rate=1.0)["passed"]


def test_format_summary_names_every_number():
    text = format_summary(summarize(Run(results(), 2.0, "time"), planned=10, max_error_rate=0.01))
    assert "requests   10 of 10 planned in 2.0 s (5.0 req/s), stopped by time" in text
    assert "latency    p50 13.5 ms" in text
    assert "status     200: 8, 503: 1, no response (connection refused): 1" in text
    assert "arms       A 4 (50.0%)  B 4 (50.0%)" in text
    assert "feedback   2 accepted of 3 sent (25.0% of answered requests)" in text
    assert text.splitlines()[5].endswith("-> FAILED")


def test_progress_bar_rendering():
    assert render(50, 100, 2, 10.0, width=10) == "[#####.....]  50/100  50%     5.0 req/s  errors 2  ETA 10s"
    assert render(100, 100, 0, 4.0, width=4).startswith("[####] 100/100 100%")


def test_progress_prints_a_line_per_tenth_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(100, stream=stream)
    for i in range(100):
        progress.tick(failed=i < 3)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("[" + "#" * 30 + "] 100/100 100%") and "errors 3" in lines[-1]
    silent = io.StringIO()
    Progress(5, stream=silent, enabled=False).tick()
    assert silent.getvalue() == ""
