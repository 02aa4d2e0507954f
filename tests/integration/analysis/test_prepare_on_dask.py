"""The A/B report with its window typed on a real dask.distributed cluster is the report typed in one process.

A LocalCluster of two worker processes (one thread each, on 127.0.0.1) types the five days of a torn window
(`torn_window.py`: Parquet days compacted by `ticket_ab.compact`, open days of CSV shards with torn lines and an
unreadable stamp, client retries, corrected and unknown labels, two feedback sources, two ramp steps), one task
per day; everything else runs in this process. The whole summary must come out as the embedded engine's, but for
the note saying where the rows were typed and the engine settings the summary records.
"""

from __future__ import annotations

import math
import zlib
from functools import partial

import pytest
from dask.distributed import LocalCluster
from torn_window import write_torn_window

from analysis import analysis, scatter
from ticket_ab.settings import ABSettings

pytestmark = pytest.mark.slow  # starts a cluster of worker processes: `make test` runs it, `make check` does not

ENGINE_SETTINGS = ("prepare_engine", "dask_scheduler", "dask_scratch")
TH = ABSettings(resamples=50)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      scheduler_kwargs=scatter.NO_DASHBOARD_PORT) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    return write_torn_window(tmp_path_factory.mktemp("torn") / "logs")


def score(scored: list[str], version: str, texts: list[str]) -> list[float]:
    """The champion's confidence as a fixed function of the text, recording what CUPAC asked to score: the texts
    come from the view `raw_requests`, which the dask engine makes in this process without scanning it."""
    scored.extend(texts)
    return [0.3 + (zlib.crc32(text.encode()) % 1000) / 1500 for text in texts]


def differences(a, b, path: str = "") -> list[str]:
    """Where two summaries differ: anything at all, but for floats within 1e-12 of each other relative to the larger
    of them and 1. DuckDB hands rows over in whatever order its threads finish (on both engines: two embedded runs
    on a busy machine differ in the 15th digit), and sums of them move in the last bits; a difference of two
    accuracies near 0 (B - A) keeps the absolute rounding of the accuracies, about 1e-15, so its bound is 1e-12 of
    the accuracies' scale (1), not of itself. A row typed differently moves such numbers by 1e-4 or more."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
        return [] if same else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} vs {b!r}"]


def without_engine(summary: dict, statement: str | None = None) -> dict:
    thresholds = {k: v for k, v in summary["thresholds"].items() if k not in ENGINE_SETTINGS}
    notes = [n for n in summary["notes"] if n != statement]
    return summary | {"thresholds": thresholds, "notes": notes}


@pytest.mark.parametrize("from_since", [False, True], ids=["every-day", "since-inside-a-compacted-day"])
def test_dask_prepare_equals_embedded_on_torn_csv_and_parquet_days(window, cluster, tmp_path, from_since):
    since = window.since if from_since else None
    scored: dict[str, list[str]] = {"duckdb": [], "dask": []}
    embedded = analysis.load(window.root, window.root, since, TH, scorer=partial(score, scored["duckdb"]))
    scratch = tmp_path / "shared-volume"
    scratch.mkdir()
    on_dask_th = TH.model_copy(update={"prepare_engine": "dask", "dask_scheduler": cluster.scheduler_address,
                                       "dask_scratch": str(scratch)})
    on_dask = analysis.load(window.root, window.root, since, on_dask_th, scorer=partial(score, scored["dask"]))

    statement = on_dask.summary["notes"][-1]
    assert statement.startswith(f"prepared on dask: {len(window.days)} day tasks on 2 workers (the scheduler at "
                                f"{cluster.scheduler_address})")
    assert not [n for n in embedded.summary["notes"] if n.startswith("prepared on dask")]
    found = differences(without_engine(embedded.summary), without_engine(on_dask.summary, statement))
    assert not found, found[:10]
    data, dask_data = embedded.summary["data"], on_dask.summary["data"]
    for count in ("malformed_request_rows", "malformed_feedback_rows"):
        assert dask_data[count] == data[count] > 0
    assert dask_data["requests_in_log"] == data["requests_in_log"] > 5000
    assert on_dask.summary["sources"] == embedded.summary["sources"] and on_dask.summary["sources"]["request log"]
    assert sorted(scored["dask"]) == sorted(scored["duckdb"]) and scored["duckdb"]  # in the order rows came
    assert on_dask.summary["comparison"]["adjustment"]["applied"]
    assert not list(scratch.iterdir()), "the run's typed rows outlived it"
