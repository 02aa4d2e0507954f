"""Task 6, `report`: one summary line and a markdown report per run, then the watermark.

The window's counts come from the stats `collect_window` took over the whole window; the saved window
is every labelled ticket plus a seeded sample, and the report says which sample the drift was measured on.

The watermark moves here, last, and only when the window is done: if anything before fails, the
next run sees the same tickets again. Then retention runs: log day folders older than
TICKET_AB_LOG_RETENTION_DAYS go, but never the watermark's day or later, which the next window reads,
and so do run folders and reports untouched for as long (never this run's).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from retrain.tasks import window as win
from retrain.tasks.results import Checked, Collected, Relabelled, Reported, Trained
from retrain.tasks.runs import expire_runs, run_slug
from ticket_ab import logstore, registry
from ticket_ab.log import get_logger, kv
from ticket_ab.logwriter import utc_day
from ticket_ab.names import DAG_ID
from ticket_ab.settings import Settings

WINDOW_COUNTS = ("rows", "router_rows", "incoming_rows", "labelled", "malformed", "requests_malformed",
                 "requests_empty_text", "requests_duplicate", "feedback_read", "feedback_malformed", "feedback_blank",
                 "feedback_unknown_request", "feedback_superseded", "feedback_outside_window", "feedback_late",
                 "feedback_late_pending", "feedback_used", "unlabelled", "sample_rows", "sample_limit", "sample_seed",
                 "sample_unlabelled", "kept_rows")

log = get_logger("dag")


def report(settings: Settings, collected: Collected, checked: Checked, relabelled: Relabelled | None,
           trained: Trained | None) -> Reported:
    """Write the run's report, attach it to MLflow, and commit the watermark when the window is done.

    `relabelled` and `trained` are None when their tasks were skipped (no drift, or too few labels).
    """
    run_id = collected.run_id
    refused = bool(collected.stats.get("feedback_refused"))
    advance, watermark_note = watermark_decision(checked, trained, refused=refused)
    line = summary_line(collected, checked, trained, relabelled)
    path = settings.reports_dir / "runs" / f"{run_slug(run_id)}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(line, collected, checked, relabelled, trained, watermark_note))
    mlflow_run = _log_report(settings, run_id, checked.mlflow_run_id, path)
    if advance:  # last: if anything above fails, the next run sees these tickets again
        committed = win.Watermark(**collected.next_watermark)
        win.save_watermark(win.watermark_path(settings.airflow_dir), committed, run_id=run_id)
    expired = expire_logs(settings, collected.next_watermark["requests_until"] if advance
                          else collected.stats.get("watermark_from"))
    expired_runs = expire_runs(settings, keep=run_id)
    version = (trained.version if trained else None) or "none"
    log.info(kv("run_report", run_id=run_id, decision=checked.status, version=version,
                watermark="advanced" if advance else "kept", expired_log_days=len(expired),
                expired_runs=len(expired_runs), line=line))
    return Reported(line=line, markdown=str(path), mlflow_run_id=mlflow_run, watermark_advanced=advance)


def expire_logs(settings: Settings, watermark: str | None) -> list[Path]:
    """Remove log days past retention, keeping the watermark's day on (no watermark yet: keep all)."""
    if not watermark:
        return []
    return logstore.expire(settings.logs_dir, settings.log.retention_days, datetime.now(UTC).date(),
                           utc_day(watermark))


def watermark_decision(checked: Checked, trained: Trained | None, refused: bool = False) -> tuple[bool, str]:
    """Consume the window unless it still needs to wait: too small, nothing to compare with, or
    drifted but without enough gold to gate a challenger (its feedback may still come). A window whose
    feedback was refused is consumed: read again, the same labels would be refused again, and a window
    that never moves would stop retention with it."""
    if checked.status in ("too_small", "no_reference"):
        return False, f"watermark kept ({checked.status}): these tickets are judged with the next window"
    if checked.retrain and refused and (trained is None or trained.version is None):
        return True, "watermark advanced: the window's feedback was refused, so waiting would not help"
    if checked.retrain and (trained is None or trained.version is None):
        return False, "watermark kept: the drifted window waits for enough feedback to gate a challenger"
    return True, "watermark advanced: these tickets are done"


def summary_line(collected: Collected, checked: Checked, trained: Trained | None,
                 relabelled: Relabelled | None = None) -> str:
    """`<run>: <decision> (<reasons>); window ...; <version or why none>` - the line operators grep."""
    stats = collected.stats
    window = (f"window {stats['rows']} tickets, {stats['labelled']} labelled, {stats['malformed']} malformed skipped"
              + (", feedback refused" if stats.get("feedback_refused") else ""))
    if relabelled and relabelled.patterns:
        names = ", ".join(p.split(":")[0] for p in relabelled.patterns)
        window += f", suspicious label pattern quarantined: {names}"
    reasons = "; ".join(checked.reasons)
    return f"{collected.run_id}: {checked.status} ({reasons}); {window}; {_outcome(checked, trained)}"


def _outcome(checked: Checked, trained: Trained | None) -> str:
    if trained and trained.version:
        gate = "passed" if trained.passed else "FAILED"
        f1 = (trained.metrics or {}).get("macro_f1")
        champ = (trained.champion_metrics or {}).get("macro_f1")
        scores = "" if f1 is None else f"macro-F1 {f1:.3f}" + (f" vs champion {champ:.3f}" if champ is not None else "")
        return (f"v{trained.version} registered{' (already, same key)' if trained.reused else ''}, "
                f"{scores}, gate {gate}, alias {trained.alias or 'none'}")
    if trained:
        return f"no new version: {trained.why}"
    if checked.retrain:
        return "no new version: training did not run"
    return "no new version: no retraining needed"


def render_markdown(line: str, collected: Collected, checked: Checked, relabelled: Relabelled | None,
                    trained: Trained | None, watermark_note: str) -> str:
    """The run report: decision and why, every check with its threshold, the window, labels, training."""
    stats = collected.stats
    out = [f"# {DAG_ID} run `{collected.run_id}`", "", line, *_decision_section(checked), *_window_section(collected)]
    if relabelled:
        out += _labels_section(relabelled)
    if trained:
        out += _gate_section(trained)
        shown = {k: v for k, v in trained.to_dict().items() if v is not None and k != "gate"}
        out += ["", "## Training", "", "```json", json.dumps(shown, indent=2, default=str), "```"]
    out += ["", "## Watermark", "", watermark_note,
            f"(from {stats.get('watermark_from')} to {stats.get('watermark_to')})", ""]
    return "\n".join(out)


def _labels_section(relabelled: Relabelled) -> list[str]:
    """Suspicious feedback first (it needs a person), then the label counts and the training memory."""
    out = ["", "## Labels", ""]
    if relabelled.patterns:
        out += ["**Suspicious feedback label patterns** (the champion contradicts them with high confidence; "
                "quarantined: reported, queued for review and kept out of training until confirmed with "
                "`TICKET_AB_FEEDBACK_CONFIRMED_PATTERNS`):", ""]
        out += [f"- {p}" for p in relabelled.patterns] + [""]
    out += ["| count | value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in relabelled.stats.items() if k != "patterns"]
    out += [f"| label store: {k} | {v} |" for k, v in relabelled.store.items()]
    out += ["", "`window` and `unlabelled` count the saved window (every labelled ticket and the drift sample), "
                "not the whole window: its counts are under Window."]
    return out + ["", f"Review queue: `{relabelled.review_path}`"]


def _gate_section(trained: Trained) -> list[str]:
    """What the gate measured: the clustered gain on untouched gold and each topic on the trusted set."""
    gate = trained.gate or {}
    out = ["", "## Gate", "", trained.gate_reason or trained.why or ""]
    gain = gate.get("gain")
    if gain:
        out += ["", f"Untouched gold: {gate['holdout_rows']} tickets from {gain['clusters']} customers; accuracy gain "
                f"{gain['gain']:+.4f}, {gain['confidence']:.0%} one-sided bounds [{gain['lower']:+.4f}, "
                f"{gain['upper']:+.4f}]; passes above -{gate['margin']}."]
    if gate.get("topic_recall"):
        out += ["", f"Per-topic recall on the trusted set ({gate['trusted_source']}, {gate['trusted_rows']} tickets; "
                f"fails below champion - {gate['topic_margin']}):", "", "| topic | n | champion | challenger |",
                "|---|---|---|---|"]
        out += [f"| {t} | {r['n']} | {r['champion']:.3f} | {r['candidate']:.3f} |"
                for t, r in gate["topic_recall"].items()]
    return out + _held_section(gate)


def _held_section(gate: dict) -> list[str]:
    """The held topics' label-free checks on the window, when the quarantine held any."""
    held = gate.get("held_topics") or []
    if not held:
        return []
    out = ["", f"Held topics (their window labels were quarantined), judged without labels on the window's tickets "
               f"the challenger was not trained on; fails below {gate['held_share']} of the champion's tickets or "
               f"below {gate['held_agreement']} agreement where the champion is confident:", "",
           "| topic | champion's tickets | challenger's | share | champion confident | agreement | verdict |",
           "|---|---|---|---|---|---|---|"]
    for c in held:
        verdict = "ABANDONED: " + "; ".join(c["failures"]) if c["failures"] else "kept"
        out.append(f"| {c['topic']} | {c['champion_tickets']} | {c['candidate_tickets']} | {_fixed(c['share'])} | "
                   f"{c['confident_tickets']} | {_fixed(c['agreement'])} | {verdict} |")
    return out


def _fixed(value: float | None) -> str:
    """A ratio with two decimals, `not judged` when there were too few tickets (None)."""
    return "not judged" if value is None else f"{value:.2f}"


def _decision_section(checked: Checked) -> list[str]:
    out = ["", "## Decision", "", f"**{checked.status}** (retrain: {str(checked.retrain).lower()})", ""]
    out += [f"- {r}" for r in checked.reasons]
    if checked.checks:
        out += ["", "| signal | fired | score | threshold | detail |", "|---|---|---|---|---|"]
        for c in checked.checks:
            score = "" if c["score"] is None else f"{c['score']:.4f}"
            fired = "yes" if c["fired"] else "no"
            out.append(f"| {c['signal']} | {fired} | {score} | {c['threshold']} | {c['detail']} |")
    if checked.html:
        out += ["", f"Evidently report: `{checked.html}` (JSON: `{checked.json_path}`), champion v{checked.champion}."]
    return out


def _window_section(collected: Collected) -> list[str]:
    stats = collected.stats
    out = ["", "## Window", "", collected.summary, "", "| count | value |", "|---|---|"]
    out += [f"| {key} | {stats.get(key)} |" for key in WINDOW_COUNTS]
    if stats.get("sample"):
        out += ["", f"Sample: {stats['sample']} (the saved window: {stats['kept_rows']} routed tickets).", ""]
    if stats.get("feedback_quarantined_source"):
        out += ["", f"Feedback quarantined (source '{stats['feedback_quarantined_source']}', "
                f"{stats['feedback_quarantined_rows']} labels kept out of this window):",
                f"- {stats['feedback_quarantined_reason']}"]
    if stats.get("feedback_refused"):
        out += ["", "Feedback refused:"] + [f"- {r}" for r in stats["feedback_refused_reasons"]]
    if stats.get("incoming_bad_files"):
        out += ["", "Bad incoming files (skipped):"] + [f"- `{b['file']}`: {b['reason']}"
                                                        for b in stats["incoming_bad_files"]]
    return out


def _log_report(settings: Settings, run_id: str, drift_run_id: str | None, path: Path) -> str:
    """Attach the markdown to the run's drift MLflow run, or to a run of its own when there was none."""
    report = registry.Artifact(path, "report")
    if drift_run_id:
        registry.attach(settings.tracking_uri, drift_run_id, report)
        return drift_run_id
    mlflow_run, _ = registry.log_run(settings, f"report-{run_slug(run_id)}", artifacts=[report],
                                     tags={"kind": "report", "dag_id": DAG_ID, "dag_run_id": run_id})
    return mlflow_run
