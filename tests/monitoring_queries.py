"""The PromQL the monitoring files run, and the metric names each expression reads.

Shared by the unit checks (promtool, definitions in router/metrics.py) and the integration test
that scrapes a real router: a panel or alert on a name the router does not export shows nothing
and never fires, and nothing else would notice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "router" / "monitoring"
# Series Prometheus makes itself for every target; the router cannot export them.
PROMETHEUS_SERIES = {"up"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
             "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = _LABEL_LIST.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", text)))
    return {m.group() for m in _IDENTIFIER.finditer(text)
            if m.group().lower() not in _KEYWORDS and not text[m.end():].lstrip().startswith("(")}


def dashboard_exprs() -> dict[str, str]:
    """Every target expression of the Grafana dashboard, keyed by panel title and target refId."""
    dashboard = json.loads((MONITORING / "grafana" / "ticket-ab.json").read_text())
    return {f"{panel['title']} [{target['refId']}]": target["expr"]
            for panel in dashboard["panels"] for target in panel["targets"]}


def alert_exprs() -> dict[str, str]:
    """Every alert rule expression of alerts.yml, keyed by alert name."""
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def router_metric_names() -> dict[str, set[str]]:
    """Expression key -> the metric names it needs the router to export (Prometheus' own series left out)."""
    return {key: metric_names(expr) - PROMETHEUS_SERIES for key, expr in (dashboard_exprs() | alert_exprs()).items()}
