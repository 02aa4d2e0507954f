"""Fixtures for running the real DAG (`airflow dags test` via ops.dagrun) against a real MLflow.

Costs are shared where sharing cannot leak between tests: one migrated Airflow DB per session
(copied into each test's home), one bootstrapped champion per module (tests compare version counts
before and after their own run, so another test's challenger does not matter).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import replay
from logfiles import append_rows

from load_test.simulate.generator import generate
from ops import dagrun
from retrain.register import train_and_register
from ticket_ab import registry
from ticket_ab.pii import mask
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from ticket_ab.settings import Settings, get_settings


@dataclass
class DagRun:
    returncode: int
    log: str
    report: str  # the run's markdown report ("" when none was written)


@pytest.fixture(scope="session")
def airflow_template(tmp_path_factory) -> Path:
    """An AIRFLOW_HOME migrated once (~11 s); tests copy its DB instead of migrating again."""
    settings = get_settings(home=tmp_path_factory.mktemp("airflow_template"))
    with open(settings.home / "migrate.log", "wb") as out:
        dagrun.ensure_db(settings, stdout=out)
    return settings.airflow_dir


@pytest.fixture(scope="module")
def champion_settings(mlflow_server, tmp_path_factory, request) -> Settings:
    """A model whose champion was trained on 1800 generated baseline tickets (lr/nb: ~20 s), one model per
    module: the MLflow server is the session's, and a run key of one module must not meet another's."""
    home = tmp_path_factory.mktemp("champion_home")
    module = request.module.__name__.rsplit(".", 1)[-1]
    settings = get_settings(home=home, tracking_uri=mlflow_server.uri, model_name=f"dag-test-{os.getpid()}-{module}",
                            training={"automl_models": "lr,nb", "reference_rows": 1500}, drift={"min_window": 200})
    outcome = train_and_register(generate("baseline", 1800, 1), settings, alias=registry.CHAMPION,
                                 source="dag-test-bootstrap", progress=lambda _: None)
    assert outcome.alias == registry.CHAMPION
    return settings


@pytest.fixture
def dag_settings(champion_settings, airflow_template, tmp_path) -> Settings:
    """The champion's model and MLflow, with this test's own TICKET_AB_HOME and a migrated Airflow DB."""
    settings = champion_settings.model_copy(update={"home": (tmp_path / "home").resolve()})
    settings.airflow_dir.mkdir(parents=True)
    for name in ("airflow.db", dagrun.MIGRATED_MARKER):
        shutil.copy2(airflow_template / name, settings.airflow_dir / name)
    return settings


def _router_text(text: str) -> str:
    return mask(" ".join(text.split()))  # the router logs one masked physical line per request


def write_router_logs(settings: Settings, tickets: pd.DataFrame, *, feedback_share: float, seed: int) -> pd.DataFrame:
    """Append `tickets` to the request log as the router would, and agents' feedback for a share."""
    rng = np.random.default_rng(seed)
    requests, feedback = [], []
    for i, t in enumerate(tickets.itertuples(index=False)):
        stamp = pd.Timestamp(t.created_at)
        request_id = f"req-{t.ticket_id}"
        values = {c: "" for c in REQUEST_COLUMNS}
        values.update(timestamp=stamp.isoformat(), request_id=request_id, ticket_id=t.ticket_id,
                      customer_id=t.customer_id, variant="A", model_alias="champion", model_version="1",
                      split_b="0.0", mode="split", topic=t.topic, confidence="0.9", latency_ms="3.1",
                      text=_router_text(t.text))
        requests.append([values[c] for c in REQUEST_COLUMNS])
        if rng.random() < feedback_share:
            feedback.append([(stamp + timedelta(hours=1)).isoformat(), request_id, t.topic, f"agent-{i % 7}"])
    append_rows(settings.logs_dir, REQUEST_COLUMNS, requests)
    append_rows(settings.logs_dir, FEEDBACK_COLUMNS, feedback)
    return tickets


@pytest.fixture
def replay_settings(dag_settings: Settings) -> Settings:
    """The DAG's settings plus a router on a free port with five feedback integrations (see replay.py)."""
    return replay.router_settings(dag_settings)


@pytest.fixture
def router_url(replay_settings: Settings) -> Iterator[str]:
    """The real router under gunicorn, serving the module's champion, for the poisoning replays."""
    with replay.serving(replay_settings) as url:
        yield url


@pytest.fixture
def router_logs() -> Callable[..., pd.DataFrame]:
    return write_router_logs


@pytest.fixture
def run_dag() -> Callable[[Settings, str], DagRun]:
    """Run the DAG once for a logical date; returns its exit code, output and markdown report."""

    def run(settings: Settings, logical_date: str) -> DagRun:
        log_path = settings.home / "dag_test.log"
        before = set((settings.reports_dir / "runs").glob("*.md"))
        returncode = dagrun.run_dag(logical_date, settings=settings, log_path=log_path, timeout_s=600)
        reports = sorted(set((settings.reports_dir / "runs").glob("*.md")) - before)
        return DagRun(returncode, log_path.read_text(errors="replace"), reports[-1].read_text() if reports else "")

    return run


@pytest.fixture
def versions(champion_settings) -> Callable[[], list]:
    """The model's registered versions, newest last."""
    client = registry.connect(champion_settings.tracking_uri)

    def listing() -> list:
        found = client.search_model_versions(f"name = '{champion_settings.model_name}'")
        return sorted(found, key=lambda v: int(v.version))

    return listing
