"""The drift run's evidence on disk: one HTML page that shows what decided, and the JSON behind it.

The page leads with every check of `drift.decide` (score, threshold, fired or not), then the
measured signals and the thresholds in force, then Evidently's own report embedded whole, so a
reader sees the decision and the distributions it rests on in one file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from retrain.ml.drift import Decision
from retrain.ml.drift_measure import Measurement

_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                                autoescape=True)


def render_html(measurement: Measurement, decision: Decision, stem: str, extra: dict[str, Any] | None = None) -> str:
    """The decision table, signals and thresholds, then Evidently's report in an iframe."""
    return _TEMPLATES.get_template("drift_report.html.j2").render(
        stem=stem, decision=decision.to_dict(), signals=measurement.signals.to_dict(),
        thresholds=measurement.thresholds.model_dump(), extra=extra or {},
        evidently_html=measurement.snapshot.get_html_str(as_iframe=False))


def save_report(measurement: Measurement, decision: Decision, directory: Path, stem: str,
                extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """HTML (decision + Evidently's report) and JSON (Evidently's metrics + our signals and decision)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    html, js = directory / f"{stem}.html", directory / f"{stem}.json"
    html.write_text(render_html(measurement, decision, stem, extra))
    payload = {"signals": measurement.signals.to_dict(), "decision": decision.to_dict(),
               "thresholds": measurement.thresholds.model_dump(), "seconds": round(measurement.seconds, 2),
               **(extra or {}), "evidently": measurement.snapshot.dict()}
    js.write_text(json.dumps(payload, indent=2, default=str))
    return html, js
