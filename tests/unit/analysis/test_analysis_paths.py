"""The two ways `analysis.py` reads a window give one report: DuckDB scanning the log files where they lie
(the default, out of core) and the checked reader loading both logs into memory (`--in-memory`).

The window is a week written as the router and compaction leave it (`bench/window_gen.py`): compacted
Parquet days and two open days of CSV shards, one of them with a torn last line.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import analysis, experiment, inference, traffic
from analysis.prepare import prepare
from ticket_ab import logscan
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.settings import ABSettings

BENCH = Path(__file__).resolve().parents[3] / "bench"
TH = ABSettings(resamples=50)


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    """60,000 requests of 2,000 customers over a week, a third labelled, one CSV line torn."""
    spec = importlib.util.spec_from_file_location("window_gen", BENCH / "window_gen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["window_gen"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        written = module.write_window(tmp_path_factory.mktemp("window"), 60_000, 2_000, seed=7)
    finally:
        sys.modules.pop("window_gen", None)
    shard = written.csv_files[0]
    shard.write_bytes(shard.read_bytes()[:-7])  # the last line torn mid-write, as a crash leaves it
    return written


def _same(a, b, path: str = "") -> list[str]:
    """Where two summaries differ: numbers beyond rounding, anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float | int):
        both_nan = math.isnan(a) and math.isnan(float(b))
        return [] if both_nan or a == pytest.approx(b, rel=1e-9, abs=1e-12) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def test_scanning_the_files_gives_the_in_memory_verdict_and_every_figure(window):
    scored = []

    def registry(version, texts):  # what the registry would score: only texts the router logged nothing for
        scored.extend(texts)
        return [0.5] * len(texts)

    since = pd.Timestamp(window.start)
    scanned = analysis.load(window.root, window.root, since, TH, scorer=registry)
    loaded = analysis.load(window.root, window.root, since, TH, scorer=registry, in_memory=True)
    assert scanned.summary["verdict"]["action"] == loaded.summary["verdict"]["action"]
    assert scanned.summary["data"]["malformed_request_rows"] == loaded.summary["data"]["malformed_request_rows"] == 1
    differences = _same({k: v for k, v in scanned.summary.items() if k != "sources"},
                        {k: v for k, v in loaded.summary.items() if k != "sources"})
    assert not differences, differences[:10]
    assert len(scanned.summary["sources"]["request log"]) == len(loaded.summary["sources"]["request log"])
    # the confidence the router logged adjusts the comparison on both paths without scoring a ticket
    adjustments = [run.summary["comparison"]["adjustment"] for run in (scanned, loaded)]
    assert scored == [] and all(a["applied"] and "champion confidence" in a["covariates"] for a in adjustments)
    assert adjustments[0]["variance_reduction"] > 0.01


def test_the_adjusted_difference_on_pooled_cells_is_the_fit_on_every_labelled_request(window):
    since = pd.Timestamp(window.start)
    report = analysis.load(window.root, window.root, since, TH, scorer=lambda version, texts: [0.5] * len(texts))
    with logscan.connect(TH.memory_mb) as con:  # the same requests, one row each, with the confidence logged
        logscan.files(con, window.root, window.root, since)
        prepared = prepare(con, since)
        traffic.window(prepared, since)
        traffic.analysed(prepared, list(traffic.periods(prepared)["key"]), [])
        traffic.labels(prepared, [])
        rows = prepared.frame("SELECT unit, variant = 'B' AS in_b, CAST(topic = label AS DOUBLE) AS right, "
                              "champion_confidence FROM lab_rows WHERE variant IN ('A', 'B')")
    weights = inference.capped_weights(rows["unit"], TH.customer_cap)
    each = inference.cluster_diff(rows["right"], rows["in_b"], rows["unit"], rows["champion_confidence"],
                                  weights=weights)
    comparison = report.summary["comparison"]
    assert comparison["adjustment"]["applied"] and comparison["strata"] == 1
    assert comparison["diff"] == pytest.approx(each.value, rel=1e-9)
    assert comparison["se"] == pytest.approx(each.se, rel=1e-9)


def test_cupac_scores_each_unlogged_ticket_once_and_the_leave_outs_reuse_the_scores(window):
    requests, feedback = read_requests(window.root).rows, read_feedback(window.root).rows
    unlogged = requests.index % 3 == 0  # the router logged no confidence for a third (an older router, say)
    requests.loc[unlogged, "champion_confidence"] = ""
    scored = []

    def registry(version, texts):
        scored.extend(texts)
        return [0.5 + 0.4 * (len(t) % 2) for t in texts]

    result = experiment.analyse(requests, feedback, since=pd.Timestamp(window.start), thresholds=TH, scorer=registry)
    assert result.summary["comparison"]["adjustment"]["applied"]
    assert len(result.summary["label_sources"]["sources"]) > 1  # leave-outs ran
    assert 0 < len(scored) == len(result.scores)  # every unlogged labelled ticket once, none again for a leave-out
