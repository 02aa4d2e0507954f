"""The Grafana dashboard and the alert rules read only metrics the router declares, and Grafana finds
Prometheus and its dashboards where compose puts them. promtool's own checks of the same files are in
tests/integration/monitoring/test_promtool.py (they run the promtool binary)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml
from monitoring_queries import (
    MONITORING,
    REPO,
    alert_exprs,
    dashboard_exprs,
    metric_names,
    router_metric_names,
)


def _defined_metrics() -> set[str]:
    """Metric names router/metrics.py declares (first argument of each Counter/Gauge/Histogram)."""
    tree = ast.parse((REPO / "router" / "metrics.py").read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"Counter", "Gauge", "Histogram"}}


def _exported_names(declared: str) -> set[str]:
    """The sample names prometheus_client exports for a declared metric (counters end in _total)."""
    base = declared.removesuffix("_total")
    return {declared, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}


def test_every_panel_and_alert_reads_a_metric_the_router_declares():
    exported = set().union(*map(_exported_names, _defined_metrics()))
    for key, expr in (dashboard_exprs() | alert_exprs()).items():
        assert metric_names(expr), f"{key}: no metric found in the expression"
        names = router_metric_names()[key]
        assert names <= exported, f"{key}: {names - exported} is not declared in router/metrics.py"


def test_the_predicted_topic_mix_panel_reads_the_predictions_counter():
    mix = [expr for key, expr in dashboard_exprs().items() if key.startswith("Predicted-topic mix")]
    assert mix and all(metric_names(expr) == {"ticket_ab_predictions_total"} for expr in mix)


def test_metric_names_ignores_functions_labels_ranges_and_keywords():
    expr = ('sum by (variant, topic) (rate(a_total{status=~"5..", x="rate(b)"}[5m])) / ignoring (topic) '
            'group_left sum without (pid) (increase(b_bucket[1h] offset 5m)) > bool 1e3 and on (instance) up')
    assert metric_names(expr) == {"a_total", "b_bucket", "up"}


def test_grafana_provisioning_points_at_the_compose_prometheus_and_dashboard_folder():
    datasource = yaml.safe_load((MONITORING / "grafana" / "datasource.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["uid"] == "prometheus"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    targets = {c["source"]: c["target"] for c in compose["services"]["grafana"]["configs"]}
    provider = yaml.safe_load((MONITORING / "grafana" / "dashboards.yml").read_text())["providers"][0]
    assert Path(targets["grafana-dashboard"]).parent == Path(provider["options"]["path"])
