"""Prometheus config, alert rules and the Grafana dashboard, checked by Prometheus' own promtool.

promtool comes from Debian's `prometheus` package (`make system-deps` installs it); without it these
tests fail and say so, since an unchecked alert rule is one that silently never fires.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ops.stack import prometheus
from tests.unit.monitoring_queries import (
    MONITORING,
    REPO,
    alert_exprs,
    dashboard_exprs,
    metric_names,
    router_metric_names,
)


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run `make system-deps` (installs Debian's prometheus package)")
    return path


def run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=60)


def _defined_metrics() -> set[str]:
    """Metric names router/metrics.py declares (first argument of each Counter/Gauge/Histogram)."""
    tree = ast.parse((REPO / "router" / "metrics.py").read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"Counter", "Gauge", "Histogram"}}


def _exported_names(declared: str) -> set[str]:
    """The sample names prometheus_client exports for a declared metric (counters end in _total)."""
    base = declared.removesuffix("_total")
    return {declared, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}


def test_compose_prometheus_config_and_its_rule_files_pass_promtool(promtool):
    result = run(promtool, "check", "config", MONITORING / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_native_rendering_with_local_targets_and_an_absolute_rule_path_passes_promtool(promtool, tmp_path):
    """What `make stack` does: the same scrape job on 127.0.0.1 ports, the same alerts.yml by absolute path."""
    rendered = prometheus.render(["127.0.0.1:8000", "127.0.0.1:8001"], tmp_path)
    result = run(promtool, "check", "config", rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(rendered.read_text())
    assert config["rule_files"] == [str(MONITORING / "alerts.yml")]
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:8000", "127.0.0.1:8001"]}]


def test_alert_rules_pass_promtool(promtool):
    result = run(promtool, "check", "rules", MONITORING / "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_a_broken_replica_and_stays_quiet_on_a_healthy_one(promtool):
    result = run(promtool, "test", "rules", MONITORING / "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
              for case in test["alert_rule_test"] if case.get("exp_alerts")}
    assert tested == set(alert_exprs()), "every alert needs a firing case in alerts.test.yml"


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    """promtool parses recording-rule expressions, so each panel query becomes one."""
    rules = [{"record": f"ticket_ab:panel_{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs().values())]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


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
