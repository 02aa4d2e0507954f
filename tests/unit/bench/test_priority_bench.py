"""The priority bench (`bench/priority_bench.py`) on a few hundred tickets: its table and its verdict line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fits models: `make test` runs it, `make check` does not

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("priority_bench", BENCH / "priority_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_tiny_run_prints_the_three_contenders_and_ends_with_the_verdict(bench, capsys):
    code = bench.main(["--train", "300", "--holdout", "150", "--candidates", "nb"])
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line for line in lines if line.startswith("| ") and "macro-F1" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| majority class", "| TF-IDF + LogisticRegression",
                                                    "| priority head `nb`"]
    assert lines[-1].startswith("verdict: PASS" if code == 0 else "verdict: FAIL")


def test_the_verdict_misses_a_head_below_the_baseline(bench, capsys):
    assert bench.verdict({"majority class": 0.15, "TF-IDF + LogisticRegression": 0.9, "head": 0.89}) == 1
    assert "MISS vs TF-IDF+LR -1.00 pt" in capsys.readouterr().out
    assert bench.verdict({"majority class": 0.15, "TF-IDF + LogisticRegression": 0.9, "head": 0.9}) == 0
