"""The unit tier starts no process, and `make check` does not even import what it will not run.

Every unit test runs with process creation refused, so a test that needs a real server, a script
run or a subprocess fails at once with a pointer to tests/integration/ instead of slowly passing.
A module marked slow as a whole (`pytestmark = pytest.mark.slow`: it fits models or runs Evidently)
is not collected when slow tests are deselected, so the fast loop does not pay for PyCaret's or
Evidently's import either.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

MOVE = "unit tests start no process; a test that needs one belongs in tests/integration/"
SLOW_MODULE = "\npytestmark = pytest.mark.slow"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Skip a slow module's import under `-m "not slow"` (None: let pytest decide as usual)."""
    if config.getoption("markexpr", "") != "not slow" or collection_path.suffix != ".py":
        return None
    return True if SLOW_MODULE in collection_path.read_text(encoding="utf-8") else None


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: subprocess.Popen, args: object, *_rest: object, **_kwargs: object) -> None:
        raise AssertionError(f"{MOVE} (it tried to run {args!r})")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog with our records: our loggers do not propagate, so they get caplog's handler."""
    ours = logging.getLogger("ticket_ab")
    ours.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    yield caplog
    ours.removeHandler(caplog.handler)
