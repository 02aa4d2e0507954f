"""The A/B report as files a person reads: a four-panel figure, a self-contained HTML page, a JSON summary.

Every number goes through `analysis.fmt`, so what the console prints, what the HTML shows and
what the JSON holds can be matched exactly. The figure is drawn by `analysis.figure`, the page by
`analysis.page` from its jinja2 template.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from analysis.experiment import Analysis
from analysis.figure import figure
from analysis.page import render_html
from ticket_ab.strict_json import jsonable

PNG, HTML, JSON = "ab_report.png", "ab_report.html", "ab_summary.json"


@dataclass(frozen=True)
class ReportPaths:
    png: Path
    html: Path
    json: Path


def write_report(analysis: Analysis, out_dir: Path) -> ReportPaths:
    """Write the PNG, the HTML (with the PNG embedded) and the JSON into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = analysis.summary
    paths = ReportPaths(out_dir / PNG, out_dir / HTML, out_dir / JSON)
    buffer = io.BytesIO()
    figure(analysis).savefig(buffer, format="png", dpi=100)
    paths.png.write_bytes(buffer.getvalue())
    paths.html.write_text(render_html(summary, buffer.getvalue()), encoding="utf-8")
    paths.json.write_text(json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return paths
