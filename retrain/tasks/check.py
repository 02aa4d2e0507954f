"""Tasks 2 and 3, `check_drift` and `decide`: the window against the champion's reference, and the branch.

The descriptors are measured on the window's drift sample (`drift_sample`, TICKET_AB_WINDOW_SAMPLE_ROWS
of its routed tickets, seeded), the champion's accuracy on every labelled ticket of the window.
`check_drift` keeps its evidence (Evidently's HTML and JSON under reports/drift/, an MLflow run of
kind `drift`) even on quiet days, and copies the champion's reference into the run's directory so
later tasks use the same one, whatever the champion becomes meanwhile.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrain.ml.drift import Check, Decision, DriftSignals, decide
from retrain.ml.drift_measure import Measurement, label_accuracy, measure
from retrain.ml.drift_report import save_report
from retrain.tasks.results import Checked, Collected
from retrain.tasks.runs import run_slug
from ticket_ab import alerts, registry
from ticket_ab.log import get_logger, kv
from ticket_ab.names import DAG_ID
from ticket_ab.schema import TEXT
from ticket_ab.settings import Settings
from ticket_ab.twohead import PRIORITY_HEAD, decide_priority, heads_of

log = get_logger("dag")


def check_drift(settings: Settings, collected: Collected) -> Checked:
    """Evidently report of the window against the champion's reference, and the decision with reasons."""
    if collected.rows < settings.drift.min_window:
        return _decided(collected.run_id, decide(DriftSignals(window_rows=collected.rows, reference_rows=0),
                                                 settings.drift))
    client = registry.connect(settings.tracking_uri)
    champion = registry.version_for(client, settings.model_name, registry.CHAMPION)
    if champion is None:
        return _no_reference(collected.run_id, f"no '{registry.CHAMPION}' for model {settings.model_name!r}: "
                                               "nothing to compare with (train one with `ticket-ab bootstrap`)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            reference = registry.load_reference(champion, dst=Path(tmp))
    except Exception as exc:  # an old version without a stored reference cannot be judged, only reported
        return _no_reference(collected.run_id, f"champion v{champion.version} has no training reference "
                                               f"({type(exc).__name__}: {exc})", champion=champion.version)
    reference_path = collected.directory / "reference.parquet"
    reference.to_parquet(reference_path, index=False)
    return _measure(settings, collected, champion, reference, reference_path)


def _measure(settings: Settings, collected: Collected, champion: registry.ModelVersion, reference: pd.DataFrame,
             reference_path: Path) -> Checked:
    """The champion's predictions on the window, measured against its reference, judged and kept."""
    model = registry.load_version(settings.model_name, champion.version)
    window = pd.read_parquet(collected.window_path)
    predicted, priority = champion_answers(model, window[[TEXT]])
    holdout_accuracy = champion.tags.get("holdout_accuracy")  # the champion's accuracy on unseen tickets
    holdout_rows = champion.tags.get("holdout_rows")
    sample = window["drift_sample"].astype(bool).to_numpy()
    measurement = measure(window.loc[sample, TEXT], predicted[sample], reference, thresholds=settings.drift,
                          reference_accuracy=float(holdout_accuracy) if holdout_accuracy else None,
                          reference_labelled=int(holdout_rows) if holdout_rows else None, seed=settings.seed,
                          window_priority=None if priority is None else priority[sample])
    measurement = whole_window(measurement, collected.rows, predicted, window["label"])
    decision = decide(measurement.signals, settings.drift)
    run_id = collected.run_id
    html, js = save_report(measurement, decision, settings.reports_dir / "drift", run_slug(run_id),
                           extra={"run_id": run_id, "model": settings.model_name, "champion_version": champion.version})
    signals = measurement.signals.to_dict()
    mlflow_run = _log_drift_run(settings, run_id, champion.version, signals, decision, [html, js])
    if decision.retrain:  # once its evidence is in MLflow (the last step that can fail, so a retry told no one)
        alerts.send(drift_alert(settings, decision, measurement.signals, champion.version), settings.alert,
                    base_link=settings.tracking_uri)
    return _decided(run_id, decision, signals=signals, champion=champion.version, reference_path=str(reference_path),
                    html=str(html), json_path=str(js), mlflow_run_id=mlflow_run, seconds=round(measurement.seconds, 2))


def champion_answers(model: Any, tickets: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
    """The champion's topic and, with a priority head, its priority (by the router's rule) on each ticket: one
    pass over the features for both."""
    if PRIORITY_HEAD not in heads_of(model):
        return pd.Series(model.predict(tickets), dtype="string"), None
    topic, priority = model.predict_both(tickets)
    return (pd.Series(np.asarray(model.classes_)[topic.argmax(axis=1)], dtype="string"),
            pd.Series(decide_priority(priority, model.priority_classes_, model.urgent_threshold), dtype="string"))


def whole_window(measurement: Measurement, rows: int, predicted: pd.Series, labels: pd.Series) -> Measurement:
    """The sample's measurement with the window's own size and the champion's accuracy on every labelled ticket
    of the window (the saved window keeps them all): the descriptors need a sample, the accuracy signal every
    label it can get, and the size gate and the alert speak of the window."""
    labelled, accuracy = label_accuracy(predicted, labels)
    return replace(measurement, signals=replace(measurement.signals, window_rows=rows, labelled=labelled,
                                                accuracy=accuracy))


# How a fired signal reads in an alert: the window's value next to the reference's, or its test.
_SIGNAL_FIGURES: dict[str, Callable[[DriftSignals], str]] = {
    "text_drift": lambda s: f"AUC {s.text_auc:.2f} (p={s.text_p:.1g})",
    "new_vocabulary": lambda s: f"{s.oov_window:.1%} unseen words (reference {s.oov_reference:.1%})",
    "language_mix": lambda s: f"{s.ru_window:.0%} Russian (reference {s.ru_reference:.0%})",
    "prediction_drift": lambda s: f"topic mix JS {s.prediction_js:.2f} (p={s.prediction_p:.1g})",
    "priority_mix": lambda s: f"priority mix JS {s.priority_js:.2f} (p={s.priority_p:.1g})",
    "accuracy_drop": lambda s: f"{s.accuracy:.1%} on {s.labelled} labels (reference {s.reference_accuracy:.1%})",
}


def drift_alert(settings: Settings, decision: Decision, signals: DriftSignals, champion: str) -> alerts.Alert:
    """The signals that fired with their values, on how many tickets, against which champion: why a retrain starts."""
    figures = {check.signal.replace("_", " "): _figure(check, signals) for check in decision.checks if check.fired}
    figures |= {"window": f"{signals.window_rows} tickets", "champion": f"v{champion}"}
    return alerts.Alert(alerts.DRIFT, f"drift in {settings.model_name}'s traffic, retraining", figures,
                        model=settings.model_name, version=champion)


def _figure(check: Check, signals: DriftSignals) -> str:
    show = _SIGNAL_FIGURES.get(check.signal)
    return show(signals) if show else f"{check.score:.3g}"  # a signal added later still reads, as its score


def _no_reference(run_id: str, reason: str, **extra: Any) -> Checked:
    return _decided(run_id, Decision(retrain=False, status="no_reference", reasons=[reason]), **extra)


def _decided(run_id: str, decision: Decision, **extra: Any) -> Checked:
    log.info(kv("drift_decision", run_id=run_id, retrain=decision.retrain, status=decision.status,
                fired=",".join(decision.fired) or "none", reasons=" | ".join(decision.reasons)))
    judged = decision.to_dict()
    return Checked(run_id=run_id, retrain=judged["retrain"], status=judged["status"], reasons=judged["reasons"],
                   fired=judged["fired"], checks=judged["checks"], **extra)


def _log_drift_run(settings: Settings, run_id: str, champion: str, signals: dict[str, Any], decision: Decision,
                   files: list[Path]) -> str:
    """The drift report as an MLflow run: artifacts, numeric signals as metrics, the decision as tags."""
    tags = {"kind": "drift", "dag_id": DAG_ID, "dag_run_id": run_id, "model": settings.model_name,
            "champion_version": champion, "decision": decision.status, "retrain": str(decision.retrain).lower(),
            "fired": ",".join(decision.fired) or "none"}
    metrics = {f"drift_{k}": float(v) for k, v in signals.items() if isinstance(v, int | float)}
    mlflow_run, _ = registry.log_run(settings, f"drift-{run_slug(run_id)}", tags=tags, metrics=metrics,
                                     artifacts=[registry.Artifact(path, "drift") for path in files])
    return mlflow_run
