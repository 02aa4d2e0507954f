"""The loop closes itself, on real processes: MLflow, the router under gunicorn, both DAGs through
`airflow dags test`, and a local chat receiver (Apprise's `json://` target).

Drifted traffic -> the drift DAG registers a challenger -> the router serves it at the first ramp step
by itself -> the experiment DAG ramps and promotes it, with an alert at each step; then a harmful
challenger is stopped, after a first attempt that fails halfway (an injected refusal of the split
change) ends, once retried by the DAG, where a first success would have.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from alert_receiver import AlertReceiver
from processes import start

from analysis import autopilot
from analysis.routerconfig import RouterConfigError
from load_test.simulate.generator import generate
from ops import dagrun, servers
from ops.env import REPO, child_env
from ops.health import wait_until
from ops.ports import free_port
from retrain.ml.features import baseline_pipeline
from ticket_ab import registry
from ticket_ab.names import CHALLENGER, CHAMPION, EXPERIMENT_DAG_ID, PREVIOUS
from ticket_ab.settings import Settings, get_settings

ADMIN = "autopilot-test-admin-token"
FEEDBACK = "autopilot-test-feedback-token"


@dataclass
class Loop:
    settings: Settings
    url: str
    receiver: AlertReceiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as listening:
        yield listening


@pytest.fixture(scope="module")
def loop(champion_settings, airflow_template, receiver, tmp_path_factory) -> Iterator[Loop]:
    """The module's champion behind a router whose challengers start at the first ramp step, and a policy with
    the demo's short steps (no minimum time, few labelled customers), alerts to the receiver."""
    home = tmp_path_factory.mktemp("autopilot-home").resolve()
    base = champion_settings
    settings = get_settings(
        home=home, tracking_uri=base.tracking_uri, model_name=base.model_name,
        training=base.training.model_dump(), drift=base.drift.model_dump(), log={"settle_s": 0.0},
        router={"port": free_port(), "admin_token": ADMIN, "reload_s": 1.0, "feedback_token": FEEDBACK},
        rollout={"start": "step", "min_step_minutes": 0.0, "min_customers": 5}, ab={"min_labelled": 30},
        alert={"urls": receiver.url})
    settings.airflow_dir.mkdir(parents=True)
    for name in ("airflow.db", dagrun.MIGRATED_MARKER):
        (settings.airflow_dir / name).write_bytes((airflow_template / name).read_bytes())
    server = start(servers.router(settings), home / "gunicorn.log", 180)
    try:
        yield Loop(settings, f"http://127.0.0.1:{settings.router.port}", receiver)
    finally:
        server.stop()


def traffic(loop: Loop, scenario: str, n: int, seed: int) -> None:
    """Tickets through the router with every answer labelled by an agent (load_test/testing.py as a user runs it)."""
    result = subprocess.run(
        [sys.executable, "load_test/testing.py", "--url", loop.url, "--n", str(n), "--concurrency", "4",
         "--scenario", scenario, "--customers", "300", "--feedback-rate", "1.0", "--seed", str(seed),
         "--max-seconds", "120", "--feedback-token", FEEDBACK, "--no-progress"],
        capture_output=True, text=True, env=child_env(loop.settings), cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def experiment_dag(loop: Loop) -> str:
    """One `airflow dags test ticket_experiment`; its output."""
    log = loop.settings.home / "experiment_dag.log"
    code = dagrun.run_dag(settings=loop.settings, log_path=log, timeout_s=300, dag_id=EXPERIMENT_DAG_ID)
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    return text


def aliases(loop: Loop) -> dict[str, str | None]:
    client = registry.connect(loop.settings.tracking_uri)
    found = {alias: registry.version_for(client, loop.settings.model_name, alias)
             for alias in (CHAMPION, CHALLENGER, PREVIOUS)}
    return {alias: (v.version if v else None) for alias, v in found.items()}


def served(loop: Loop) -> dict:
    return requests.get(f"{loop.url}/config", timeout=10).json()


def titles(loop: Loop) -> list[str]:
    return [body.get("title", "") for body in loop.receiver.received]


def serves(loop: Loop, version: str) -> dict:
    def config_of_version() -> dict | None:
        config = served(loop)
        return config if config["challenger"] == version else None

    return wait_until(config_of_version, 60, f"the router serves challenger v{version}", interval_s=0.5)


def test_a_drifted_window_becomes_a_promoted_champion_with_no_human_step(loop, run_dag):
    old = aliases(loop)[CHAMPION]
    traffic(loop, "new_product", 600, 21)
    assert run_dag(loop.settings, "2026-05-01").returncode == 0
    new = aliases(loop)[CHALLENGER]
    assert new is not None and new != old
    config = serves(loop, new)
    assert config["ab_split_b"] == loop.settings.rollout.ramp_steps[0] and config["updated_by"] == "rollout policy"
    decisions = []
    for round_no in range(6):
        traffic(loop, "new_product", 500, 30 + round_no)
        experiment_dag(loop)
        now = aliases(loop)
        decisions.append((served(loop)["ab_split_b"], now[CHAMPION]))
        if now[CHAMPION] == new:
            break
    assert aliases(loop) == {CHAMPION: new, CHALLENGER: None, PREVIOUS: old}, decisions
    assert decisions[-2][0] == loop.settings.rollout.ramp_steps[-1], f"promoted before the last step: {decisions}"
    received = loop.receiver.wait_for(lambda got: any("promoted" in b.get("title", "") for b in got), 10)
    text = " | ".join(b.get("title", "") for b in received)
    for expected in ("drift", f"v{new}", "ramped", "promoted"):
        assert expected in text.lower(), text
    version = registry.connect(loop.settings.tracking_uri).get_model_version(loop.settings.model_name, new)
    audits = [json.loads(v) for k, v in version.tags.items() if k.startswith(autopilot.AUDIT_PREFIX)]
    assert {a["action"] for a in audits} >= {"ramp", "promote"} and all(a["who"] and a["why"] for a in audits)
    assert version.tags[autopilot.OUTCOME_TAG] == "promote" and autopilot.JOURNAL_TAG not in version.tags


def test_a_harmful_challenger_is_stopped_and_a_retry_after_a_failure_ends_like_a_first_success(loop):
    champion = aliases(loop)[CHAMPION]
    tickets = generate("new_product", 600, 5)
    shuffled = tickets["topic"].sample(frac=1.0, random_state=0).to_numpy()  # a model that learned noise
    pipeline = baseline_pipeline(5).fit(tickets[["text"]], shuffled)
    bad = registry.publish(loop.settings.tracking_uri, loop.settings.model_name, pipeline, tickets[["text"]].head(2),
                           alias=CHALLENGER, why="autopilot test: a harmful challenger", tags={"source": "test"})
    serves(loop, bad)
    traffic(loop, "new_product", 1500, 41)
    broken = loop.settings.model_copy(update={"router": loop.settings.router.model_copy(update={"admin_token": "x"})})
    stops_before = sum("stopped" in t for t in titles(loop))
    with pytest.raises(RouterConfigError, match="401"):
        autopilot.run_once(broken, who="autopilot test (refused)")
    client = registry.connect(loop.settings.tracking_uri)
    assert client.get_model_version(loop.settings.model_name, bad).tags[autopilot.JOURNAL_TAG] == "stop"
    assert aliases(loop)[CHALLENGER] == bad, "nothing moved before the failure"
    experiment_dag(loop)  # the DAG's next look finishes the journalled stop
    assert aliases(loop) == {CHAMPION: champion, CHALLENGER: None, PREVIOUS: aliases(loop)[PREVIOUS]}
    version = client.get_model_version(loop.settings.model_name, bad)
    assert version.tags["validation_status"] == "stopped" and version.tags[autopilot.OUTCOME_TAG] == "stop"
    assert autopilot.JOURNAL_TAG not in version.tags
    config = served(loop)
    assert config["ab_split_b"] == 0.0 or config["challenger"] != bad
    loop.receiver.wait_for(lambda got: sum("stopped" in b.get("title", "") for b in got) > stops_before, 10)
    assert sum("stopped" in t for t in titles(loop)) == stops_before + 1, "one alert for one stop"
    again = autopilot.run_once(loop.settings, who="autopilot test (after)")
    assert again.action == "hold" and aliases(loop)[CHAMPION] == champion
