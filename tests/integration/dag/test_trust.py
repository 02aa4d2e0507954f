"""Retraining you can trust, through the real DAG task functions against a real MLflow server:
a retry completes a half-done registration. (Targeted feedback poisoning is replayed through the
real router and the real DAG in test_poisoning_replay.py.)"""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from load_test.simulate.generator import generate
from retrain.tasks import check, collect, relabel, report, train
from retrain.tasks import window as win
from ticket_ab import registry

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
    assert report.report(settings, collected, checked, relabelled, retried).watermark_advanced
    assert win.load_watermark(win.watermark_path(settings.airflow_dir)).run_id == "manual__retry"
