"""`ticket-ab predict` writes each ticket's priority for a two-head version, and says a one-head version has none."""

from __future__ import annotations

import pandas as pd
import pytest

from load_test.simulate.generator import generate
from ops.cli import main
from tests.unit.router.router_testkit import fitted_pipeline, fitted_two_head
from ticket_ab import registry


@pytest.fixture
def scored(tmp_path, monkeypatch, capsys):
    """Run `ticket-ab predict --version 3` over 30 generated tickets with `model` as v3 (no MLflow), and return
    (the written file, what the command printed)."""
    data = tmp_path / "tickets.csv"
    generate("baseline", 30, seed=5)[["ticket_id", "text"]].to_csv(data, index=False)
    monkeypatch.setattr(registry, "connect", lambda uri: None)

    def run(model) -> tuple[pd.DataFrame, str]:
        monkeypatch.setattr(registry, "load_version", lambda name, version: model)
        out = tmp_path / "scored.csv"
        assert main(["predict", "--data", str(data), "--out", str(out), "--version", "3", "--no-progress"]) == 0
        return pd.read_csv(out), capsys.readouterr().out

    return run


def test_a_two_head_version_writes_each_tickets_priority_and_prints_the_mix(scored):
    frame, printed = scored(fitted_two_head(seed=1, n=300))
    assert frame["predicted_priority"].notna().all() and frame["priority_confidence"].between(0, 1).all()
    assert "priorities: " in printed and "predicts topic only" not in printed


def test_a_one_head_version_leaves_the_priority_blank_and_says_so(scored):
    frame, printed = scored(fitted_pipeline(seed=0))
    assert frame["predicted_priority"].isna().all() and frame["priority_confidence"].isna().all()
    assert "v3 predicts topic only" in printed and "predicted_priority and priority_confidence are blank" in printed
