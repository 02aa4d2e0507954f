"""Test helper: docker-compose.yml as data, and the patterns of its `volumes-init` script."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
OWN = re.compile(r"^\s*own (\d+):(\d+) (\S+)$", re.M)  # `own uid:gid path` lines of the init script
GROUP_WRITABLE = re.compile(r"^\s*chmod [0-7]?[0-7][7][0-7] (\S+)$", re.M)


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def writable_mounts(service: dict) -> dict[str, str]:
    """Named volume -> mount path of the volumes a service mounts writable."""
    return {v.split(":")[0]: v.split(":")[1] for v in service.get("volumes", []) if not v.endswith(":ro")}
