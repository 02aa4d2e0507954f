"""The stack's Prometheus (compose's config, router/monitoring/prometheus.yml, with local targets) and Redis.

Compose scrapes `router:8000` and `router-2:8000`; natively the replicas are 127.0.0.1 on consecutive
ports. Everything else, scrape settings and the alert rules (`router/monitoring/alerts.yml`, by
absolute path), is taken from the compose config as is, so both stacks monitor the same way.
The binaries come from Debian's `prometheus` package (`make system-deps`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ops.env import REPO
from ops.ports import LOOPBACK
from ops.servers import binary as find_binary

MONITORING = REPO / "router" / "monitoring"
PACKAGES = {"prometheus": "prometheus", "redis-server": "redis-server"}


def binary(name: str) -> str:
    return find_binary(name, f"run `make system-deps` (installs Debian's {PACKAGES[name]} package)")


def render(targets: list[str], directory: Path) -> Path:
    """Write the native config into `directory` and return its path."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["rule_files"] = [str(MONITORING / rule) for rule in config.get("rule_files", [])]
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = list(targets)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text("# Rendered by `make stack` from router/monitoring/prometheus.yml: do not edit.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return path


def command(config: Path, port: int) -> list[str]:
    return [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={config.parent / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}", "--storage.tsdb.retention.time=15d"]


def redis_command(directory: Path, port: int) -> list[str]:
    """Redis for Celery: loopback only, its dump file in `directory` (beside the stack's other state)."""
    return [binary("redis-server"), "--bind", LOOPBACK, "--port", str(port), "--dir", str(directory),
            "--protected-mode", "yes"]
