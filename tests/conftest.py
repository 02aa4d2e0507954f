"""Shared fixtures: one real MLflow server per test session, settings rooted in a temp dir."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from alert_receiver import AlertReceiver
from processes import start

from ops import servers
from ops.ports import free_port
from ticket_ab.settings import Settings, get_settings

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# The suite predates the rollout policy: a challenger is served at the configured split unless a test
# sets TICKET_AB_ROLLOUT_START=step (the product default) itself, as the rollout and autopilot tests do.
os.environ.setdefault("TICKET_AB_ROLLOUT_START", "configured")
_names = itertools.count(1)

# `make test` hands a test file to whichever of its two workers is free (`--dist loadfile`,
# `--no-loadscope-reorder`), in collection order. These files take minutes each (clean-clone CI,
# slowest first); starting them first, then the other integration files, then the unit files (many
# short ones that fill the gaps), keeps one worker from being left with the long ones at the end.
SLOWEST_FILES = (
    "tests/integration/stack/test_native_stack.py",
    "tests/integration/dag/test_dag_runs.py",
    "tests/integration/dag/test_autopilot_loop.py",
    "tests/integration/dag/test_late_poisoning.py",
    "tests/integration/retrain/test_cli.py",
    "tests/integration/dag/test_poisoning_replay.py",
    "tests/integration/router/test_router_scale_out.py",
)


def _file_rank(item: pytest.Item) -> tuple[int, int]:
    path = item.nodeid.split("::", 1)[0]
    if path in SLOWEST_FILES:
        return 0, SLOWEST_FILES.index(path)
    return (1 if path.startswith("tests/integration/") else 2), 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slowest files first (a stable sort: each file's tests keep their order); a renamed slow file is named."""
    missing = [path for path in SLOWEST_FILES if not (config.rootpath / path).is_file()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py SLOWEST_FILES names files that do not exist: {missing}")
    items.sort(key=_file_rank)


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    port: int
    directory: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` process on sqlite (as `make mlflow` runs it), shared by every test that needs HTTP."""
    settings = get_settings(home=tmp_path_factory.mktemp("mlflow"), mlflow_port=free_port())
    server = start(servers.mlflow(settings), settings.mlflow_dir / "server.log")
    yield MlflowServer(uri=settings.tracking_uri, port=settings.mlflow_port, directory=settings.mlflow_dir)
    server.stop()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port someone else listens on for the duration of the test."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def alert_receiver() -> Iterator[AlertReceiver]:
    """A real HTTP endpoint on 127.0.0.1 that keeps what Apprise's `json://` target posts (`.url` is that URL)."""
    with AlertReceiver() as receiver:
        yield receiver


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings under this test's tmp dir; every call gets its own registered-model name."""

    def make(**overrides: object) -> Settings:
        overrides.setdefault("home", tmp_path / "home")
        overrides.setdefault("model_name", f"test-model-{os.getpid()}-{next(_names)}")
        return get_settings(**overrides)

    return make


_TINY_VOCAB = {
    "access": ["password", "login", "locked", "account", "sso", "mfa"],
    "billing": ["invoice", "charged", "refund", "payment", "receipt", "vat"],
    "hardware": ["laptop", "screen", "keyboard", "battery", "printer", "dock"],
    "network": ["vpn", "wifi", "dns", "latency", "router", "offline"],
}


@pytest.fixture(scope="session")
def tiny_tickets():
    """120 labelled tickets over 4 topics: enough to fit and select in seconds, small enough to read."""
    rng = np.random.default_rng(7)
    rows = []
    fillers = ["please help", "since this morning", "for the whole team", "again", "urgent", "thanks"]
    for topic, words in _TINY_VOCAB.items():
        for i in range(30):
            picked = rng.choice(words, size=3, replace=False)
            rows.append({"ticket_id": f"{topic}-{i}", "text": f"{' '.join(picked)} {rng.choice(fillers)}",
                         "topic": topic})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
