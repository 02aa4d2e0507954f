"""Retraining you can trust, through the real DAG task functions against a real MLflow server:
a retry completes a half-done registration, and targeted feedback poisoning reaches no alias."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from logfiles import append_rows
from mlflow.exceptions import MlflowException

from retrain.adapters import labelstore, registry
from retrain.contracts.requestlog import FEEDBACK_COLUMNS
from retrain.ml.evaluate import predict
from retrain.simulate.generator import generate
from retrain.tasks import check, collect, relabel, report, train
from retrain.tasks import window as win

pytestmark = pytest.mark.slow
KEY = "ticket_drift_retrain:test-trust"


@pytest.fixture
def settings(champion_settings, tmp_path):
    """The module's champion, with this test's own TICKET_AB_HOME (no Airflow needed: tasks are called directly)."""
    return champion_settings.model_copy(update={"home": (tmp_path / "home").resolve()})


def _first_tasks(settings, run_id: str):
    collected = collect.collect_window(settings, run_id)
    checked = check.check_drift(settings, collected)
    assert checked.retrain, checked.reasons
    return collected, checked, relabel.relabel_window(settings, collected, checked)


def _alias_events(client, settings, version: str) -> int:
    return sum(k.startswith("alias_event.") for k in client.get_model_version(settings.model_name, version).tags)


def test_a_retry_after_a_failure_between_registration_and_alias_move_ends_as_a_first_success(
        settings, router_logs, versions, monkeypatch):
    router_logs(settings, generate("new_product", 700, 52, start="2026-04-01T00:00:00Z"), feedback_share=0.4, seed=52)
    collected, checked, relabelled = _first_tasks(settings, "manual__retry")
    before = len(versions())
    client = registry.connect(settings.tracking_uri)
    challenger_before = registry.version_for(client, settings.model_name, "challenger")  # the module's model is shared

    def registry_gone(*_args, **_kwargs):
        raise MlflowException("injected: the registry went away after the version was registered")

    monkeypatch.setattr(registry, "ensure_alias", registry_gone)
    with pytest.raises(MlflowException, match="injected"):
        train.train_challenger(settings, collected, checked, relabelled, key=KEY)
    monkeypatch.undo()
    challenger_after = registry.version_for(client, settings.model_name, "challenger")
    assert len(versions()) == before + 1
    assert getattr(challenger_after, "version", None) == getattr(challenger_before, "version", None)  # not moved
    assert versions()[-1].tags["validation_status"] == "passed"  # the verdict is part of the registration

    retried = train.train_challenger(settings, collected, checked, relabelled, key=KEY)  # what Airflow's retry runs

    assert retried.reused and retried.passed and retried.alias == "challenger"
    assert len(versions()) == before + 1
    assert registry.version_for(client, settings.model_name, "challenger").version == retried.version
    events = _alias_events(client, settings, retried.version)
    assert train.train_challenger(settings, collected, checked, relabelled, key=KEY).alias == "challenger"
    assert _alias_events(client, settings, retried.version) == events  # a third try moves nothing
    assert report.report(settings, collected, checked).watermark_advanced
    assert win.load_watermark(win.watermark_path(settings.airflow_dir)).run_id == "manual__retry"


def _poisoned_feedback(tickets: pd.DataFrame, share: float, seed: int) -> list[list[str]]:
    """True labels on `share` of the tickets, except every network ticket is labelled billing, over five sources."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, t in enumerate(tickets.itertuples(index=False)):
        if rng.random() < share:
            label = "billing" if t.topic == "network" else t.topic
            stamp = (pd.Timestamp(t.created_at) + timedelta(hours=1)).isoformat()
            rows.append([stamp, f"req-{t.ticket_id}", label, f"integration-{i % 5}"])
    return rows


def test_targeted_poisoning_reaches_no_alias_and_the_report_names_the_pattern(settings, router_logs, versions):
    tickets = generate("new_product", 900, 61, start="2026-04-01T00:00:00Z")
    router_logs(settings, tickets, feedback_share=0.0, seed=61)
    feedback = _poisoned_feedback(tickets, 0.5, 61)
    append_rows(settings.logs_dir, FEEDBACK_COLUMNS, feedback)
    truth = tickets.set_index("ticket_id")["topic"]
    poisoned = np.mean([row[2] != truth[row[1].removeprefix("req-")] for row in feedback])
    assert 0.10 <= poisoned <= 0.20  # no source and no label dominates

    collected, checked, relabelled = _first_tasks(settings, "manual__poison")
    trained = train.train_challenger(settings, collected, checked, relabelled, key=KEY + ":poison")
    reported = report.report(settings, collected, checked)

    assert any(p.startswith("network->billing") for p in relabelled.patterns), relabelled.stats
    markdown = open(reported.markdown).read()
    assert "network->billing" in markdown and "Suspicious feedback label patterns" in markdown
    store = labelstore.load(labelstore.path_for(settings.data_dir))
    assert store.loc[store["status"] == labelstore.QUARANTINED, "pattern"].eq("network->billing").all()
    fresh = generate("baseline", 1500, 62, start="2026-04-02T00:00:00Z")
    network = fresh.loc[fresh["topic"] == "network"]
    client = registry.connect(settings.tracking_uri)
    champion = registry.load_pipeline(settings.model_name, "champion")
    for alias in ("champion", "challenger"):
        if registry.version_for(client, settings.model_name, alias) is None:
            continue
        model = registry.load_pipeline(settings.model_name, alias)
        to_billing = (predict(model, network) == "billing").mean()
        assert to_billing <= (predict(champion, network) == "billing").mean() + 0.05, (alias, trained.gate_reason)
