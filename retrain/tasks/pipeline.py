"""The DAG's tasks as plain functions: small JSON-able dicts and file paths in, the same out.

`airflow/dags/ticket_drift_retrain.py` only wires these together, so the tests, a CLI and the
DAG run the same code. Every task writes one structured log line and its result next to the
run's other files under `reports/runs/<run>/`; `report` reads them from there (an XCom of a
skipped task would log a scary "XCom not found" on every quiet day).

Failure semantics: the watermark moves only in `report`, the last task, and aliases move only at
the end of `train_and_register`, so a failure anywhere leaves both where they were.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.contracts.log import get_logger, kv
from retrain.contracts.names import DAG_ID
from retrain.contracts.schema import TEXT, TOPIC
from retrain.contracts.settings import Settings
from retrain.ml.drift import DriftSignals, decide, measure, save_report
from retrain.tasks import window as win

RELABEL_TASK, SKIP_TASK = "relabel", "skip"
_RESULT_FILES = ("relabel.json", "train.json")

log = get_logger("dag")


def run_slug(run_id: str) -> str:
    """A run id as a file name (`manual__2026-01-01T00:00:00+00:00` has colons and a plus)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id).strip("_") or "run"


def run_key(logical_date: Any, run_id: str) -> str:
    """The idempotency key of a run: re-running a logical date must not register twice."""
    if logical_date is None:
        return f"{DAG_ID}:{run_id}"
    stamp = logical_date.isoformat() if hasattr(logical_date, "isoformat") else str(logical_date)
    return f"{DAG_ID}:{stamp}"


def run_dir(settings: Settings, run_id: str) -> Path:
    """Where a run keeps its window, reference copy, relabelled data and task results."""
    return settings.reports_dir / "runs" / run_slug(run_id)


def _write_result(directory: Path, name: str, result: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(result, indent=2, default=str))


def _read_result(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / name
    return json.loads(path.read_text()) if path.exists() else None


# ---- 1. collect_window -------------------------------------------------------------------------

def collect_window(settings: Settings, run_id: str) -> dict[str, Any]:
    """New tickets since the watermark, joined with guarded feedback, saved as the run's window."""
    started = time.perf_counter()
    directory = run_dir(settings, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in _RESULT_FILES:  # a re-run of this run id must not report an earlier attempt's results
        (directory / stale).unlink(missing_ok=True)
    watermark = win.load_watermark(win.watermark_path(settings.airflow_dir))
    window = win.collect(settings.request_log, settings.feedback_log, settings.incoming_dir, watermark,
                         settings.feedback)
    path = directory / "window.parquet"
    frame = window.frame.copy()
    for column in ("request_id", "ticket_id", "origin", TEXT, "served_topic", "label", "label_source"):
        frame[column] = frame[column].astype("string")
    frame.to_parquet(path, index=False)
    summary = win.summarize(window.stats)
    log.info(kv("collect_window", run_id=run_id, rows=window.stats["rows"], labelled=window.stats["labelled"],
                malformed=window.stats["malformed"], feedback_refused=window.stats["feedback_refused"],
                seconds=time.perf_counter() - started, summary=summary))
    return {"run_id": run_id, "run_dir": str(directory), "window_path": str(path), "rows": window.stats["rows"],
            "labelled": window.stats["labelled"], "stats": window.stats, "summary": summary,
            "next_watermark": asdict(window.next_watermark)}


# ---- 2. check_drift ----------------------------------------------------------------------------

def check_drift(settings: Settings, collected: dict[str, Any]) -> dict[str, Any]:
    """Evidently report of the window against the champion's reference, and the decision with reasons."""
    thresholds = settings.drift
    run_id = collected["run_id"]
    directory = Path(collected["run_dir"])
    if collected["rows"] < thresholds.min_window:
        decision = decide(DriftSignals(window_rows=collected["rows"], reference_rows=0), thresholds)
        return _decided(run_id, decision.to_dict(), signals=None)

    from retrain.adapters import registry

    client = registry.connect(settings.tracking_uri)
    champion = registry.version_for(client, settings.model_name, registry.CHAMPION)
    if champion is None:
        return _no_reference(run_id, f"no '{registry.CHAMPION}' for model {settings.model_name!r}: nothing to "
                                     "compare with (train one with `python -m retrain bootstrap`)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            reference = registry.load_reference(client, champion, dst=Path(tmp))
    except Exception as exc:  # an old version without a stored reference cannot be judged, only reported
        return _no_reference(run_id, f"champion v{champion.version} has no training reference "
                                     f"({type(exc).__name__}: {exc})", champion=champion.version)
    reference_path = directory / "reference.parquet"  # later tasks use this copy, whatever the champion becomes
    reference.to_parquet(reference_path, index=False)

    import mlflow.sklearn

    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{champion.version}")
    window = pd.read_parquet(collected["window_path"])
    predicted = pd.Series(model.predict(window[[TEXT]]), dtype="string")
    holdout_accuracy = champion.tags.get("holdout_accuracy")  # the champion's accuracy on unseen tickets
    holdout_rows = champion.tags.get("holdout_rows")
    measurement = measure(window[TEXT], predicted, reference, labels=window["label"], thresholds=thresholds,
                          reference_accuracy=float(holdout_accuracy) if holdout_accuracy else None,
                          reference_labelled=int(holdout_rows) if holdout_rows else None, seed=settings.seed)
    decision = decide(measurement.signals, thresholds)
    stem = run_slug(run_id)
    html, js = save_report(measurement, decision, settings.reports_dir / "drift", stem,
                           extra={"run_id": run_id, "model": settings.model_name, "champion_version": champion.version})
    mlflow_run = _log_drift_run(settings, run_id, champion.version, measurement.signals, decision, [html, js])
    return _decided(run_id, decision.to_dict(), signals=measurement.signals.to_dict(), champion=champion.version,
                    reference_path=str(reference_path), html=str(html), json_path=str(js),
                    mlflow_run_id=mlflow_run, seconds=round(measurement.seconds, 2))


def _no_reference(run_id: str, reason: str, **extra: Any) -> dict[str, Any]:
    decision = {"retrain": False, "status": "no_reference", "reasons": [reason], "fired": [], "checks": []}
    return _decided(run_id, decision, signals=None, **extra)


def _decided(run_id: str, decision: dict[str, Any], *, signals: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    log.info(kv("drift_decision", run_id=run_id, retrain=decision["retrain"], status=decision["status"],
                fired=",".join(decision["fired"]) or "none", reasons=" | ".join(decision["reasons"])))
    return {"run_id": run_id, "retrain": decision["retrain"], "status": decision["status"],
            "reasons": decision["reasons"], "decision": decision, "signals": signals, **extra}


def _log_drift_run(settings: Settings, run_id: str, champion: str, signals, decision, files: list[Path]) -> str:
    """The drift report as an MLflow run: artifacts, numeric signals as metrics, the decision as tags."""
    import mlflow

    mlflow.set_experiment(settings.experiment)
    metrics = {k: float(v) for k, v in signals.to_dict().items() if isinstance(v, int | float) and v is not None}
    with mlflow.start_run(run_name=f"drift-{run_slug(run_id)}") as run:
        mlflow.set_tags({"kind": "drift", "dag_id": DAG_ID, "dag_run_id": run_id, "model": settings.model_name,
                         "champion_version": champion, "decision": decision.status,
                         "retrain": str(decision.retrain).lower(), "fired": ",".join(decision.fired) or "none"})
        mlflow.log_metrics({f"drift_{k}": v for k, v in metrics.items()})
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="drift")
    return run.info.run_id


# ---- 3. decide ---------------------------------------------------------------------------------

def choose_branch(checked: dict[str, Any]) -> str:
    """The branch task's answer: relabel and train on drift or an accuracy drop, else skip."""
    return RELABEL_TASK if checked.get("retrain") else SKIP_TASK


# ---- 4. relabel --------------------------------------------------------------------------------

def relabel_window(settings: Settings, collected: dict[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
    """Cleaned gold + confident pseudo-labels for training, a gold holdout, and the review queue."""
    from retrain.ml.relabel import relabel, write_review_queue

    started = time.perf_counter()
    directory = Path(collected["run_dir"])
    window = pd.read_parquet(collected["window_path"])
    reference = pd.read_parquet(checked["reference_path"])
    result = relabel(window, reference, settings.relabel, settings.seed)
    train_path, holdout_path = directory / "relabelled.parquet", directory / "holdout.parquet"
    result.train.to_parquet(train_path, index=False)
    result.holdout.to_parquet(holdout_path, index=False)
    review_path = write_review_queue(result.review, settings.reports_dir / "review_queue.csv")
    shutil.copyfile(review_path, directory / "review_queue.csv")
    out = {"train_path": str(train_path), "holdout_path": str(holdout_path), "review_path": str(review_path),
           "stats": result.stats}
    _write_result(directory, "relabel.json", out)
    s = result.stats
    log.info(kv("relabel", run_id=collected["run_id"], gold=s["gold"], gold_fixed=s["gold_fixed"],
                gold_disputed=s["gold_disputed"], gold_health=s["gold_health"], holdout=s["holdout"],
                pseudo=s["pseudo"], pseudo_threshold=s["pseudo_threshold"], pseudo_precision=s["pseudo_precision"],
                review=s["review"], seconds=time.perf_counter() - started))
    return out


# ---- 5. train_challenger -----------------------------------------------------------------------

def train_challenger(settings: Settings, collected: dict[str, Any], checked: dict[str, Any],
                     relabelled: dict[str, Any], *, key: str) -> dict[str, Any]:
    """Reference + relabelled window -> PyCaret -> gate on the window's gold holdout -> maybe `challenger`."""
    from retrain.adapters import registry
    from retrain.ml.train import train_and_register

    config = settings.relabel
    directory = Path(collected["run_dir"])
    holdout = pd.read_parquet(relabelled["holdout_path"])
    if len(holdout) < config.min_holdout:
        why = (f"only {len(holdout)} gold-labelled tickets held out (< {config.min_holdout}): a challenger could "
               "not be gated on current traffic; the window waits for more feedback")
        out = {"version": None, "why": why, "key": key}
        _write_result(directory, "train.json", out)
        log.info(kv("train_challenger", run_id=collected["run_id"], version="none", why=why))
        return out
    reference = pd.read_parquet(checked["reference_path"])[[TEXT, TOPIC]]
    window_train = pd.read_parquet(relabelled["train_path"])[[TEXT, TOPIC]]
    data = pd.concat([reference, window_train], ignore_index=True)
    outcome = train_and_register(
        data, settings, alias=registry.CHALLENGER, source=f"dag:{DAG_ID}:{collected['run_id']}", key=key,
        holdout=holdout, extra_tags={"dag_run_id": collected["run_id"], "drift_status": checked["status"],
                                     "drift_fired": ",".join(checked["decision"]["fired"]) or "none",
                                     "window_rows": str(collected["rows"]), "reference_rows": str(len(reference))},
        progress=lambda message: log.info(kv("train_progress", run_id=collected["run_id"], message=message)),
    )
    out = {"version": outcome.version, "passed": outcome.passed, "alias": outcome.alias,
           "gate_reason": outcome.gate_reason, "winner": outcome.winner, "reused": outcome.reused,
           "metrics": _plain(outcome.metrics), "champion_metrics": _plain(outcome.champion_metrics), "key": key,
           "train_rows": len(data), "holdout_rows": len(holdout)}
    _write_result(directory, "train.json", out)
    log.info(kv("train_challenger", run_id=collected["run_id"], version=outcome.version, passed=outcome.passed,
                alias=outcome.alias or "none", reused=outcome.reused, gate=outcome.gate_reason))
    return out


def _plain(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k != "per_topic_accuracy"}


# ---- 6. report ---------------------------------------------------------------------------------

def report(settings: Settings, collected: dict[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
    """One summary line and a markdown report per run; commits the watermark when the window is done."""
    directory = Path(collected["run_dir"])
    relabelled = _read_result(directory, "relabel.json")
    trained = _read_result(directory, "train.json")
    run_id = collected["run_id"]
    advance, watermark_note = _watermark_decision(checked, trained)
    line = summary_line(collected, checked, trained)
    markdown = render_markdown(run_id, line, collected, checked, relabelled, trained, watermark_note)
    path = settings.reports_dir / "runs" / f"{run_slug(run_id)}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown)
    mlflow_run = _log_report(settings, run_id, checked.get("mlflow_run_id"), path)
    if advance:  # last: if anything above fails, the next run sees these tickets again
        committed = win.Watermark(**collected["next_watermark"])
        win.save_watermark(win.watermark_path(settings.airflow_dir), committed, run_id=run_id)
    version = (trained or {}).get("version") or "none"
    log.info(kv("run_report", run_id=run_id, decision=checked["status"], version=version,
                watermark="advanced" if advance else "kept", line=line))
    return {"line": line, "markdown": str(path), "mlflow_run_id": mlflow_run, "watermark_advanced": advance}


def _watermark_decision(checked: dict[str, Any], trained: dict[str, Any] | None) -> tuple[bool, str]:
    """Consume the window unless it still needs to wait: too small, nothing to compare with, or
    drifted but without enough gold to gate a challenger (its feedback may still come)."""
    status = checked["status"]
    if status in ("too_small", "no_reference"):
        return False, f"watermark kept ({status}): these tickets are judged with the next window"
    if checked.get("retrain") and (trained is None or trained.get("version") is None):
        return False, "watermark kept: the drifted window waits for enough feedback to gate a challenger"
    return True, "watermark advanced: these tickets are done"


def summary_line(collected: dict[str, Any], checked: dict[str, Any], trained: dict[str, Any] | None) -> str:
    """`<run>: <decision> (<reasons>); window ...; <version or why none>` - the line operators grep."""
    stats = collected["stats"]
    head = f"{collected['run_id']}: {checked['status']}"
    reasons = "; ".join(checked["reasons"])
    window = (f"window {stats['rows']} tickets, {stats['labelled']} labelled, {stats['malformed']} malformed skipped"
              + (", feedback refused" if stats.get("feedback_refused") else ""))
    if trained and trained.get("version"):
        gate = "passed" if trained.get("passed") else "FAILED"
        f1 = (trained.get("metrics") or {}).get("macro_f1")
        champ = (trained.get("champion_metrics") or {}).get("macro_f1")
        scores = "" if f1 is None else f"macro-F1 {f1:.3f}" + (f" vs champion {champ:.3f}" if champ is not None else "")
        outcome = (f"v{trained['version']} registered{' (already, same key)' if trained.get('reused') else ''}, "
                   f"{scores}, gate {gate}, alias {trained.get('alias') or 'none'}")
    elif trained:
        outcome = f"no new version: {trained.get('why')}"
    elif checked.get("retrain"):
        outcome = "no new version: training did not run"
    else:
        outcome = "no new version: no retraining needed"
    return f"{head} ({reasons}); {window}; {outcome}"


def render_markdown(run_id: str, line: str, collected: dict[str, Any], checked: dict[str, Any],
                    relabelled: dict[str, Any] | None, trained: dict[str, Any] | None, watermark_note: str) -> str:
    """The run report: decision and why, every check with its threshold, the window, labels, training."""
    stats = collected["stats"]
    out = [f"# {DAG_ID} run `{run_id}`", "", line, "", "## Decision", "",
           f"**{checked['status']}** (retrain: {str(checked['retrain']).lower()})", ""]
    out += [f"- {r}" for r in checked["reasons"]]
    checks = checked["decision"].get("checks") or []
    if checks:
        out += ["", "| signal | fired | score | threshold | detail |", "|---|---|---|---|---|"]
        for c in checks:
            score = "" if c["score"] is None else f"{c['score']:.4f}"
            fired = "yes" if c["fired"] else "no"
            out.append(f"| {c['signal']} | {fired} | {score} | {c['threshold']} | {c['detail']} |")
    if checked.get("html"):
        out += ["", f"Evidently report: `{checked['html']}` (JSON: `{checked['json_path']}`), "
                    f"champion v{checked.get('champion')}."]
    out += ["", "## Window", "", collected["summary"], "", "| count | value |", "|---|---|"]
    for key in ("rows", "router_rows", "incoming_rows", "labelled", "malformed", "requests_malformed",
                "requests_empty_text", "requests_duplicate", "feedback_read", "feedback_malformed", "feedback_blank",
                "feedback_unknown_request", "feedback_superseded", "feedback_outside_window", "feedback_used"):
        out.append(f"| {key} | {stats.get(key)} |")
    if stats.get("feedback_refused"):
        out += ["", "Feedback refused:"] + [f"- {r}" for r in stats["feedback_refused_reasons"]]
    if stats.get("incoming_bad_files"):
        out += ["", "Bad incoming files (skipped):"] + [f"- `{b['file']}`: {b['reason']}"
                                                        for b in stats["incoming_bad_files"]]
    if relabelled:
        out += ["", "## Labels", "", "| count | value |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in relabelled["stats"].items()]
        out += ["", f"Review queue: `{relabelled['review_path']}`"]
    if trained:
        out += ["", "## Training", "", "```json", json.dumps(trained, indent=2, default=str), "```"]
    out += ["", "## Watermark", "", watermark_note,
            f"(from {stats.get('watermark_from')} to {stats.get('watermark_to')})", ""]
    return "\n".join(out)


def _log_report(settings: Settings, run_id: str, drift_run_id: str | None, path: Path) -> str:
    """Attach the markdown to the run's drift MLflow run, or to a run of its own when there was none."""
    from retrain.adapters import registry

    client = registry.connect(settings.tracking_uri)
    if drift_run_id:
        client.log_artifact(drift_run_id, str(path), artifact_path="report")
        return drift_run_id
    import mlflow

    mlflow.set_experiment(settings.experiment)
    with mlflow.start_run(run_name=f"report-{run_slug(run_id)}") as run:
        mlflow.set_tags({"kind": "report", "dag_id": DAG_ID, "dag_run_id": run_id})
        mlflow.log_artifact(str(path), artifact_path="report")
    return run.info.run_id
