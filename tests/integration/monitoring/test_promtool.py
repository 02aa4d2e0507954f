"""Prometheus config, alert rules and the Grafana dashboard's queries, checked by Prometheus' own promtool.

promtool comes from Debian's `prometheus` package (`make system-deps` installs it); without it these
tests fail and say so, since an unchecked alert rule is one that silently never fires.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from monitoring_queries import MONITORING, alert_exprs, dashboard_exprs

from ops.stack import prometheus


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run `make system-deps` (installs Debian's prometheus package)")
    return path


def run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=60)


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
