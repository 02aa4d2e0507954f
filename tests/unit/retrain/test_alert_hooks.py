"""The retrain DAG's two alerts: drift found and challenger registered, each sent once its state is durable, and
never again by a retry. Evidently, PyCaret and MLflow are stood in for; `ticket_ab.alerts.send` is recorded."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from retrain.ml.drift import DriftSignals
from retrain.ml.drift_measure import Measurement
from retrain.register import TrainOutcome
from retrain.tasks import check, train
from retrain.tasks.results import Checked, Collected, Relabelled
from ticket_ab import alerts, registry
from ticket_ab.registry import RegistryUnavailable
from ticket_ab.schema import TEXT, TOPIC
from ticket_ab.settings import get_settings

DRIFTED = DriftSignals(window_rows=400, reference_rows=800, text_auc=0.91, text_p=1e-12, oov_window=0.21,
                       oov_reference=0.04)
QUIET = DriftSignals(window_rows=400, reference_rows=800, text_auc=0.51, text_p=0.4, oov_window=0.04,
                     oov_reference=0.04)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[alerts.Alert, object, str]]:
    calls: list[tuple[alerts.Alert, object, str]] = []
    monkeypatch.setattr(alerts, "send", lambda alert, settings, *, base_link="": calls.append(
        (alert, settings, base_link)) or True)
    return calls


@pytest.fixture
def settings(tmp_path):
    return get_settings(home=tmp_path / "home", tracking_uri="http://mlflow.internal:5000", model_name="tickets",
                        drift={"min_window": 100}, relabel={"min_holdout": 5})


def _collected(tmp_path: Path, rows: int = 400) -> Collected:
    window = pd.DataFrame({TEXT: [f"vpn drops {i}" for i in range(rows)], "label": [None] * rows,
                           "drift_sample": True})
    path = tmp_path / "window.parquet"
    window.to_parquet(path, index=False)
    return Collected(run_id="manual__1", run_dir=str(tmp_path), window_path=str(path), rows=rows, labelled=0,
                     stats={}, summary="", next_watermark={})


@pytest.fixture
def champion_in_mlflow(monkeypatch):
    """Champion v3 with its reference, as the registry adapter would hand them over."""
    champion = SimpleNamespace(version="3", tags={})
    model = SimpleNamespace(predict=lambda frame: np.array(["network"] * len(frame)))
    monkeypatch.setattr(registry, "connect", lambda uri: object())
    monkeypatch.setattr(registry, "version_for", lambda client, name, alias: champion)
    monkeypatch.setattr(registry, "load_reference", lambda version, dst: pd.DataFrame({TEXT: ["a"], TOPIC: ["x"]}))
    monkeypatch.setattr(registry, "load_version", lambda name, version: model)
    monkeypatch.setattr(check, "save_report", lambda *_a, **_k: (Path("r.html"), Path("r.json")))


def _measured(monkeypatch, signals: DriftSignals) -> None:
    monkeypatch.setattr(check, "measure", lambda *_a, **_k: Measurement(signals, snapshot=None, seconds=1.0))


def test_drift_is_alerted_once_its_run_is_in_mlflow_and_a_retry_of_a_failed_attempt_alerts_once(
        settings, tmp_path, champion_in_mlflow, monkeypatch, sent):
    _measured(monkeypatch, DRIFTED)
    attempts = iter([RegistryUnavailable("MLflow is down"), "run-1"])

    def log_drift_run(*_args: object) -> str:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(check, "_log_drift_run", log_drift_run)
    with pytest.raises(RegistryUnavailable):
        check.check_drift(settings, _collected(tmp_path))
    assert sent == []  # the drift run never reached MLflow: nobody is told yet

    assert check.check_drift(settings, _collected(tmp_path)).status == "drift"
    [(alert, alert_settings, base_link)] = sent
    assert alert.event == alerts.DRIFT and alert.model == "tickets" and alert.version == "3"
    assert alert.figures == {"text drift": "AUC 0.91 (p=1e-12)",
                             "new vocabulary": "21.0% unseen words (reference 4.0%)",
                             "window": "400 tickets", "champion": "v3"}
    assert alert_settings is settings.alert and base_link == "http://mlflow.internal:5000"


def test_a_quiet_window_alerts_no_one(settings, tmp_path, champion_in_mlflow, monkeypatch, sent):
    _measured(monkeypatch, QUIET)
    monkeypatch.setattr(check, "_log_drift_run", lambda *_a: "run-1")
    assert check.check_drift(settings, _collected(tmp_path)).status == "no_drift"
    assert sent == []


def _outcome(*, reused: bool = False, passed: bool = True, moves: tuple[str, ...] = ("challenger: v3 -> v7",),
             champion: dict | None = None) -> TrainOutcome:
    return TrainOutcome(version="7", run_id="r7", winner="lr", passed=passed, gate_reason="gain ok",
                        alias=registry.CHALLENGER if passed else None, metrics={"accuracy": 0.912, "macro_f1": 0.905},
                        champion_metrics=champion, reused=reused, moves=list(moves),
                        gate={"gain": {"n": 300, "clusters": 54, "gain": 0.032, "lower": 0.01, "upper": 0.05,
                                       "confidence": 0.95}} if not reused else {})


def _train(settings, tmp_path: Path, monkeypatch, outcome: TrainOutcome):
    holdout = pd.DataFrame({TEXT: [f"invoice twice {i}" for i in range(6)], TOPIC: ["billing"] * 6,
                            "customer_id": [f"C{i}" for i in range(6)], "request_id": [f"q{i}" for i in range(6)],
                            "ticket_id": [None] * 6})
    holdout_path = tmp_path / "holdout.parquet"
    holdout.to_parquet(holdout_path, index=False)
    relabelled = Relabelled(train_path="unused", holdout_path=str(holdout_path), review_path="unused", stats={})
    checked = Checked(run_id="manual__1", retrain=True, status="drift", reasons=["text_drift"], fired=["text_drift"])
    monkeypatch.setattr(train, "train_and_register", lambda *_a, **_k: outcome)
    return train.train_challenger(settings, _collected(tmp_path), checked, relabelled, key="dag:2026-03-02")


def test_a_registered_challenger_is_alerted_once_and_a_retry_that_finds_it_in_place_stays_quiet(
        settings, tmp_path, monkeypatch, sent):
    first = _outcome(champion={"accuracy": 0.88, "macro_f1": 0.871, "version": "3"})
    assert _train(settings, tmp_path, monkeypatch, first).version == "7"
    [(alert, alert_settings, base_link)] = sent
    assert alert.event == alerts.REGISTERED and alert.title == "challenger v7 registered"
    assert (alert.model, alert.version) == ("tickets", "7")
    assert alert.figures == {"model": "tickets", "winner": "lr", "accuracy": "91.2% vs champion v3 88.0%",
                             "macro-F1": "0.905 vs champion v3 0.871",
                             "gain": "+3.2 pt, 95% lower bound +1.0 pt on 300 tickets (54 customers)"}
    assert alert_settings is settings.alert and base_link == "http://mlflow.internal:5000"

    retry = _train(settings, tmp_path, monkeypatch, _outcome(reused=True, moves=()))
    assert retry.reused is True and len(sent) == 1


def test_a_retry_that_completes_the_alias_move_is_the_one_that_alerts(settings, tmp_path, monkeypatch, sent):
    _train(settings, tmp_path, monkeypatch, _outcome(reused=True))
    [(alert, _, _)] = sent
    assert alert.event == alerts.REGISTERED and alert.figures == {
        "model": "tickets", "winner": "lr", "accuracy": "91.2%", "macro-F1": "0.905"}


def test_a_version_that_failed_the_gate_alerts_no_one(settings, tmp_path, monkeypatch, sent):
    _train(settings, tmp_path, monkeypatch, _outcome(passed=False, moves=()))
    assert sent == []
