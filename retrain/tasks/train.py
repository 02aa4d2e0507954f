"""Task 5, `train_challenger`: the label store's draw -> PyCaret -> gate -> maybe `challenger`.

The training data is the label store's recency-capped draw (bootstrap, earlier windows' gold and
pseudo-labels, this window's), without this window's untouched gold: that gold is the gate's
holdout, so a challenger is judged on the traffic it will serve by labels no model touched. Without
enough of it no version is registered and the window waits for more feedback. Topics whose window
labels the quarantine held keep their share of the draw and are judged by the gate without labels,
on the window's tickets the challenger is not trained on. Register and alias
are one idempotent step (`train_and_register` with the run key): a retry completes what a failed
attempt started. The draw's priorities go with it (`priority`, NaN where unknown), and so do its rows with only a
priority (feedback that corrected only the priority: their topic is NaN), for the priority head; the holdout's
priorities let the gate judge that head on untouched gold.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from retrain.adapters import labelstore
from retrain.adapters.labelstore import PRIORITY
from retrain.ml.patterns import confirmed
from retrain.ml.train import CUSTOMER, Held
from retrain.register import TrainOutcome, train_and_register
from retrain.tasks.results import Checked, Collected, Relabelled, Trained
from ticket_ab import alerts, registry
from ticket_ab.log import get_logger, kv
from ticket_ab.names import DAG_ID
from ticket_ab.schema import TEXT, TOPIC
from ticket_ab.settings import Settings
from ticket_ab.strict_json import jsonable

log = get_logger("dag")


def train_challenger(settings: Settings, collected: Collected, checked: Checked, relabelled: Relabelled, *,
                     key: str) -> Trained:
    """Train on the label store's draw; `key` makes a re-run register nothing new and finish an alias move."""
    holdout = pd.read_parquet(relabelled.holdout_path)
    if len(holdout) < settings.relabel.min_holdout:
        why = (f"only {len(holdout)} untouched gold tickets held out (< {settings.relabel.min_holdout}): a challenger "
               "could not be gated on current traffic; the window waits for more feedback")
        return _done(collected, Trained(key=key, why=why))
    store = labelstore.load(labelstore.path_for(settings.data_dir))
    held = tuple(relabelled.held_topics)
    data = labelstore.draw(store, settings.training.store_max_rows, exclude=set(labelstore.keys_for(holdout)),
                           confirmed=confirmed(settings.feedback.confirmed_patterns), held_topics=set(held),
                           folds=settings.training.automl_folds)
    memory = labelstore.fingerprint(data)
    run_id = collected.run_id
    outcome = train_and_register(
        data.reindex(columns=[TEXT, TOPIC, PRIORITY]), settings, alias=registry.CHALLENGER,
        source=f"dag:{DAG_ID}:{run_id}", key=key, holdout=holdout.reindex(columns=[TEXT, TOPIC, CUSTOMER, PRIORITY]),
        extra_tags={"dag_run_id": run_id, "drift_status": checked.status,
                    "drift_fired": ",".join(checked.fired) or "none", "window_rows": str(collected.rows),
                    "label_store_fingerprint": memory, "label_store_rows": str(len(data)),
                    "quarantined_patterns": ",".join(p.split(":")[0] for p in relabelled.patterns) or "none"},
        progress=lambda message: log.info(kv("train_progress", run_id=run_id, message=message)),
        held=Held(held, unseen_window(collected, data)) if held else None,
    )
    trained = _trained(outcome, key, train_rows=len(data), holdout_rows=len(holdout), store_fingerprint=memory)
    if outcome.moves:  # the alias moved in this call: a retry that finds the challenger in place tells no one again
        alerts.send(registered_alert(settings, trained), settings.alert, base_link=settings.tracking_uri)
    return _done(collected, trained)


# The gate's scores an alert shows: (metric, label, how it reads).
_SCORES = (("accuracy", "accuracy", "{:.1%}"), ("macro_f1", "macro-F1", "{:.3f}"))


def registered_alert(settings: Settings, trained: Trained) -> alerts.Alert:
    """The new challenger with the gate's figures: its scores on untouched gold next to the champion's."""
    metrics, champion = trained.metrics or {}, trained.champion_metrics
    figures = {"model": settings.model_name, "winner": trained.winner or "?"}
    for name, label, shown in _SCORES:
        if name in metrics:
            against = f" vs champion v{champion['version']} {shown.format(champion[name])}" if champion else ""
            figures[label] = shown.format(metrics[name]) + against
    gain = (trained.gate or {}).get("gain")
    if gain:
        figures["gain"] = (f"{gain['gain'] * 100:+.1f} pt, {gain['confidence']:.0%} lower bound "
                           f"{gain['lower'] * 100:+.1f} pt on {gain['n']} tickets ({gain['clusters']} customers)")
    return alerts.Alert(alerts.REGISTERED, f"challenger v{trained.version} registered", figures,
                        model=settings.model_name, version=trained.version)


def unseen_window(collected: Collected, data: pd.DataFrame) -> pd.DataFrame:
    """The window's tickets the challenger is not trained on: where its answers are its own."""
    window = pd.read_parquet(collected.window_path)
    return window.loc[~labelstore.keys_for(window).isin(set(data[labelstore.KEY])), [TEXT]].reset_index(drop=True)


def _trained(outcome: TrainOutcome, key: str, *, train_rows: int, holdout_rows: int,
             store_fingerprint: str) -> Trained:
    return Trained(key=key, version=outcome.version, passed=outcome.passed, alias=outcome.alias,
                   gate_reason=outcome.gate_reason, winner=outcome.winner, reused=outcome.reused,
                   metrics=jsonable(_plain(outcome.metrics)),
                   champion_metrics=jsonable(_plain(outcome.champion_metrics)),
                   train_rows=train_rows, holdout_rows=holdout_rows, gate=jsonable(outcome.gate) or None,
                   store_fingerprint=store_fingerprint)


def _done(collected: Collected, trained: Trained) -> Trained:
    if trained.version is None:
        log.info(kv("train_challenger", run_id=collected.run_id, version="none", why=trained.why))
    else:
        log.info(kv("train_challenger", run_id=collected.run_id, version=trained.version, passed=trained.passed,
                    alias=trained.alias or "none", reused=trained.reused, gate=trained.gate_reason))
    return trained


def _plain(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """Headline metrics only: per-topic accuracy stays in MLflow, out of XCom and the run's files."""
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k != "per_topic_accuracy"}
