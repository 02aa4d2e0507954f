"""The dask engine's pure parts, in this process: the window cut into day tasks, a day task's typed rows and counts,
the scratch folder's life, and the errors a user sees (tests/integration/analysis/ runs it on a real cluster)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import dask
import duckdb
import pandas as pd
import pytest
from experiment_logs import LogSpec
from torn_window import write_torn_window

from analysis import analysis, scatter
from analysis.prepare import UNREADABLE_FEEDBACK, prepare
from ops.ports import free_port
from ticket_ab import logscan
from ticket_ab.logstore import FEEDBACK, KINDS, REQUESTS, partition_dir
from ticket_ab.settings import ABSettings

MEMORY_MB = 256


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    return write_torn_window(tmp_path_factory.mktemp("torn") / "logs")


@pytest.fixture
def unreachable():
    """A scheduler address nothing listens on, and dask's connect timeout short enough to find out in a second."""
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        yield f"tcp://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("from_since", [False, True], ids=["every-day", "since"])
def test_the_day_tasks_read_every_file_of_the_window_exactly_once(window, from_since):
    since = window.since if from_since else None
    days = scatter.window_days(window.root, window.root, since)
    assert days == window.days
    with logscan.connect(MEMORY_MB) as con:
        whole = logscan.files(con, window.root, window.root, since, count=False).files
        by_day = [logscan.files(con, window.root, window.root, since, day=day, count=False).files for day in days]
    for kind in KINDS:
        read = [f for files in by_day for f in files[kind]]
        assert len(read) == len(set(read)) and set(read) == set(whole[kind]) and read


def test_a_day_with_feedback_only_is_a_task_and_days_before_since_and_other_folders_are_not(tmp_path):
    for kind, day in ((REQUESTS, "2026-11-24"), (FEEDBACK, "2026-11-24"), (FEEDBACK, "2026-11-25")):
        Path(partition_dir(tmp_path, kind, pd.Timestamp(day).date())).mkdir(parents=True)
    (tmp_path / REQUESTS / "date=not-a-day").mkdir()
    assert [str(d) for d in scatter.window_days(tmp_path, tmp_path, None)] == ["2026-11-24", "2026-11-25"]
    since = pd.Timestamp("2026-11-25T08:00:00+00:00")
    assert [str(d) for d in scatter.window_days(tmp_path, tmp_path, since)] == ["2026-11-25"]


@pytest.mark.parametrize("from_since", [False, True], ids=["every-day", "since"])
def test_the_day_tasks_type_exactly_the_rows_and_count_the_lines_one_process_does(window, tmp_path, from_since):
    since = window.since if from_since else None
    typed = [scatter.type_day(day, str(window.root), str(window.root), since, str(tmp_path), MEMORY_MB)
             for day in scatter.window_days(window.root, window.root, since)]
    with logscan.connect(MEMORY_MB) as con:
        scan = logscan.files(con, window.root, window.root, since)
        prepare(con, since)
        unreadable = con.execute(UNREADABLE_FEEDBACK).fetchone()[0]
        for table, files in (("req_typed", [t.requests for t in typed]), ("fb", [t.feedback for t in typed])):
            days = f"read_parquet({files})"
            assert con.execute(f"SELECT count(*) FROM {days}").fetchone() == con.execute(
                f"SELECT count(*) FROM {table}").fetchone()
            for a, b in ((table, days), (days, table)):  # the same rows, duplicates counted, NULLs equal
                assert con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone() == (0,)
            assert _columns(con, days) == _columns(con, table)
    assert {kind: sum(t.malformed[kind] for t in typed) for kind in KINDS} == scan.malformed
    assert all(scan.malformed.values()) and unreadable
    assert sum(t.unreadable_feedback for t in typed) == unreadable


def _columns(con: duckdb.DuckDBPyConnection, source: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def test_a_day_folder_a_worker_cannot_see_is_an_error_not_an_empty_day(window, tmp_path):
    with pytest.raises(FileNotFoundError, match="every worker must see the log root"):
        scatter.type_day(window.days[0], str(tmp_path / "elsewhere"), str(tmp_path / "elsewhere"), None,
                         str(tmp_path), MEMORY_MB)


class _Failed:
    """A future whose task failed on its worker."""

    def __init__(self, error: BaseException):
        self.error = error

    def result(self):
        raise self.error


class _Client:
    """A client whose every task fails with `error` (as dask's futures re-raise a task's exception)."""

    def __init__(self, error: BaseException):
        self.error = error

    def map(self, func, days, **kwargs):
        return [_Failed(self.error) for _ in days]


@pytest.mark.parametrize("error", [MemoryError("worker killed"), ModuleNotFoundError("No module named 'analysis'")])
def test_a_day_task_that_fails_on_its_worker_is_one_error_line_naming_its_day(window, tmp_path, error):
    with pytest.raises(scatter.ClusterError, match=f"the day task of {window.days[0]} failed: {type(error).__name__}"):
        scatter.fan_out(_Client(error), window.days, window.root, window.root, None, tmp_path, MEMORY_MB)


def test_a_runs_scratch_is_inside_the_given_folder_and_removed_afterwards_even_when_the_run_fails(tmp_path):
    with scatter.scratch(str(tmp_path)) as out:
        assert out.parent == tmp_path and out.name.startswith(scatter.SCRATCH_PREFIX)
        (out / "requests-2026-11-24.parquet").write_bytes(b"rows")
    assert not list(tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="a day task broke"):
        with scatter.scratch(str(tmp_path)) as out:
            (out / "feedback-2026-11-24.parquet").write_bytes(b"rows")
            raise RuntimeError("a day task broke")
    assert not list(tmp_path.iterdir())


def test_without_a_scratch_setting_a_run_gets_a_private_temporary_folder_removed_afterwards():
    with scatter.scratch("") as out:
        assert out.parent == Path(tempfile.gettempdir()) and out.is_dir() and oct(out.stat().st_mode)[-3:] == "700"
    assert not out.exists()


def test_a_scratch_folder_that_is_not_there_is_one_error_line_naming_the_setting(tmp_path):
    with pytest.raises(scatter.ClusterError, match=scatter.SCRATCH_ENV) as raised:
        with scatter.scratch(str(tmp_path / "no-such-volume")):
            pass
    assert "\n" not in str(raised.value) and "no-such-volume" in str(raised.value)


def test_an_unreachable_scheduler_is_one_error_line_naming_its_address_and_setting(unreachable):
    with pytest.raises(scatter.ClusterError, match=unreachable) as raised:
        with scatter.cluster(unreachable):
            pass
    assert scatter.SCHEDULER_ENV in str(raised.value) and "\n" not in str(raised.value)


def test_a_window_without_days_is_prepared_here_without_a_cluster(window, unreachable):
    th = ABSettings(prepare_engine="dask", dask_scheduler=unreachable)
    after = pd.Timestamp("2026-12-24T00:00:00+00:00")
    with logscan.connect(MEMORY_MB) as con, scatter.prepared_on_dask(con, window.root, window.root, after, th) as on:
        assert on.prepared.counts["requests"] == 0 and on.statement == ""


def test_analysis_py_exits_2_with_one_error_line_when_the_dask_scheduler_cannot_be_reached(
        ab_logs, tmp_path, monkeypatch, capsys, unreachable):
    monkeypatch.setenv("TICKET_AB_TEST_PREPARE_ENGINE", "dask")
    monkeypatch.setenv("TICKET_AB_TEST_DASK_SCHEDULER", unreachable)
    out = tmp_path / "reports"
    assert analysis.main(["--logs", str(ab_logs(LogSpec())), "--out", str(out), "--no-cupac"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot use the dask scheduler at {unreachable} ({scatter.SCHEDULER_ENV}): ")
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()


def test_the_engine_flag_overrides_the_setting_and_is_refused_with_in_memory(capsys):
    assert analysis.thresholds(analysis.parse_args(["--engine", "dask"]), ABSettings()).prepare_engine == "dask"
    assert analysis.thresholds(analysis.parse_args([]), ABSettings(prepare_engine="dask")).prepare_engine == "dask"
    with pytest.raises(SystemExit) as exited:
        analysis.parse_args(["--engine", "dask", "--in-memory"])
    assert exited.value.code == 2 and "not with --in-memory" in capsys.readouterr().err
