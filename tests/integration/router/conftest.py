"""Fixtures for the router integration tests (helpers live in router_harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TICKET_AB_HOME for one module's router (module-scoped; the shared `make_settings` is per test)."""
    return tmp_path_factory.mktemp("router-home")
