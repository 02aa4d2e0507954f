"""Fixtures for the experiment tests: a factory of synthetic router logs (see experiment_logs.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from experiment_logs import LogSpec, write_ab_logs


@pytest.fixture
def ab_logs(tmp_path: Path) -> Callable[..., Path]:
    """`ab_logs(spec_or_none, **spec_fields)` -> a directory with both logs, unique per call."""
    calls = iter(range(1000))

    def make(spec: LogSpec | None = None, **fields) -> Path:
        return write_ab_logs(tmp_path / f"logs{next(calls)}", spec or LogSpec(**fields))

    return make
