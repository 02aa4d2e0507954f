"""testing.py and analysis.py as a user runs them: real processes against a real router under
gunicorn, which serves a champion and a challenger from a real MLflow server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import start

from load_test.simulate.generator import generate
from ops import servers
from ops.env import REPO, child_env
from ops.ports import free_port
from retrain.ml.features import baseline_pipeline
from ticket_ab import registry
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.schema import TOPICS
from ticket_ab.settings import get_settings

FEEDBACK_TOKEN = "load-test-feedback-token"
N = 300
FEEDBACK_RATE = 0.3


@dataclass(frozen=True)
class Router:
    url: str
    home: Path
    env: dict[str, str]


def _register(uri: str, name: str) -> None:
    """Champion v1 knows the baseline month (400 tickets); challenger v2 was trained on 1,500 tickets after
    the 'new_product' launch, so on new_product traffic it is far better: a gap the customer-level,
    always-valid verdict settles with the few hundred labels per arm of this test."""
    for alias, scenario, seed, n in ((registry.CHAMPION, "baseline", 0, 400),
                                     (registry.CHALLENGER, "new_product", 1, 1500)):
        tickets = generate(scenario, n, seed)
        pipeline = baseline_pipeline(seed).fit(tickets[["text"]], tickets["topic"])
        registry.publish(uri, name, pipeline, tickets[["text"]].head(2), alias=alias,
                         why="experiment integration test", tags={"source": "load test"})


@pytest.fixture(scope="module")
def router(mlflow_server, tmp_path_factory) -> Iterator[Router]:
    home = tmp_path_factory.mktemp("experiment-home")
    name = f"experiment-load-{os.getpid()}"
    _register(mlflow_server.uri, name)
    settings = get_settings(home=home, tracking_uri=mlflow_server.uri, model_name=name, router={
        "port": free_port(), "host": "127.0.0.1", "workers": 2, "threads": 4, "split_b": 0.5,
        "feedback_tokens": f"load_test:{FEEDBACK_TOKEN}", "admin_token": "load-test-admin-token"})
    server = start(servers.router(settings), home / "gunicorn.log", 180)
    try:
        yield Router(f"http://127.0.0.1:{settings.router.port}", home, child_env(settings, secrets=True))
    finally:
        server.stop()


def _script(path: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, path, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


@dataclass(frozen=True)
class LoadRun:
    result: subprocess.CompletedProcess
    summary: dict
    logs: Path  # a copy of the logs right after this run, so later tests cannot change what it saw


@pytest.fixture(scope="module")
def load_run(router: Router) -> LoadRun:
    out = router.home / "load.json"
    result = _script("load_test/testing.py", "--url", router.url, "--n", str(N), "--concurrency", "4",
                     "--scenario", "new_product", "--feedback-rate", str(FEEDBACK_RATE), "--label-noise", "0.05",
                     "--seed", "1", "--max-seconds", "120", "--json-out", str(out), "--feedback-token", FEEDBACK_TOKEN,
                     env=router.env)
    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = shutil.copytree(router.home / "logs", router.home / "logs-after-first-run")
    return LoadRun(result, json.loads(out.read_text()), snapshot)


def test_every_request_is_one_log_row(load_run):
    result, summary = load_run.result, load_run.summary
    logged = read_requests(load_run.logs)
    assert logged.malformed == 0
    assert len(logged.rows) == N == summary["requests"] == summary["answered"]
    assert summary["status_counts"] == {"200": N}
    assert set(logged.rows["variant"]) == {"A", "B"}
    assert sum(arm["requests"] for arm in summary["arms"].values()) == N
    assert json.loads(result.stdout.strip().splitlines()[-1]) == summary  # the last stdout line is the JSON


def test_feedback_share_matches_the_rate(load_run):
    summary = load_run.summary
    feedback = read_feedback(load_run.logs)
    share = len(feedback.rows) / N
    # Binomial sd at p=0.3, n=300 is 0.026; four sd keeps this deterministic run far from flaky.
    assert abs(share - FEEDBACK_RATE) < 4 * (FEEDBACK_RATE * (1 - FEEDBACK_RATE) / N) ** 0.5
    assert summary["feedback"]["accepted"] == len(feedback.rows) == summary["feedback"]["planned"]
    requests = set(read_requests(load_run.logs).rows["request_id"])
    assert set(feedback.rows["request_id"]) <= requests
    assert set(feedback.rows["label"]) <= set(TOPICS)
    assert set(feedback.rows["source"]) == {"load_test"}  # the integration its token names


def test_analysis_reports_on_the_load_test_logs(router, load_run):
    out = router.home / "reports-first-run"
    result = _script("analysis/analysis.py", "--logs", str(load_run.logs), "--out", str(out), env=router.env)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "ab_summary.json").read_text())
    assert summary["data"]["requests_in_log"] == N
    assert summary["data"]["labelled_analysed"] == len(read_feedback(load_run.logs).rows)
    assert summary["arms"]["A"]["versions"] == ["1"] and summary["arms"]["B"]["versions"] == ["2"]
    assert summary["srm"]["applicable"] and not summary["srm"]["flagged"]
    assert (out / "ab_report.png").stat().st_size > 10_000
    assert "VERDICT: keep collecting" in result.stdout  # about 45 labels per arm: far too few to decide


def test_a_better_challenger_is_promoted_through_the_registry(router, load_run, mlflow_server):
    more = _script("load_test/testing.py", "--url", router.url, "--n", "700", "--concurrency", "4",
                   "--scenario", "new_product", "--feedback-rate", "1", "--label-noise", "0.05", "--seed", "2",
                   "--max-seconds", "120", "--no-progress", "--feedback-token", FEEDBACK_TOKEN, env=router.env)
    assert more.returncode == 0, more.stdout + more.stderr
    out = router.home / "reports-promote"
    result = _script("analysis/analysis.py", "--out", str(out), "--promote", env=router.env)  # logs from settings
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "ab_summary.json").read_text())
    assert summary["verdict"]["action"] == "promote challenger", summary["verdict"]["reason"]
    adjustment = summary["comparison"]["adjustment"]  # CUPAC: the champion v1, loaded from the registry
    assert adjustment["applied"] and adjustment["variance_reduction"] > 0, summary["notes"]
    assert adjustment["uncapped_diff"] == pytest.approx(summary["arms"]["B"]["accuracy"]
                                                          - summary["arms"]["A"]["accuracy"])
    assert summary["promotion"]["done"] is True
    assert "alias moved: champion: v1 -> v2" in result.stdout
    client = registry.connect(mlflow_server.uri)
    name = router.env["TICKET_AB_MODEL_NAME"]
    assert registry.version_for(client, name, registry.CHAMPION).version == "2"
    assert registry.version_for(client, name, registry.PREVIOUS).version == "1"
    assert registry.version_for(client, name, registry.CHALLENGER) is None
    events = [json.loads(v) for k, v in client.get_model_version(name, "2").tags.items() if k.startswith("alias_event")]
    champion = [e for e in events if e["alias"] == "champion"]
    assert champion and champion[-1]["who"].endswith("via analysis.py") and "A/B test" in champion[-1]["why"]


def test_unreachable_router_is_one_line_and_exit_2(router):
    result = _script("load_test/testing.py", "--url", "http://127.0.0.1:9", "--n", "5", "--feedback-rate", "0",
                     env=router.env)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: cannot reach the router at http://127.0.0.1:9 (connection refused); "
                                     "start it or pass --url")


def test_tokens_never_reach_logs_reports_errors_or_the_registry(router, load_run, mlflow_server):
    import requests

    admin = router.env["TICKET_AB_ADMIN_TOKEN"]
    wrong = requests.post(f"{router.url}/config", json={"ab_split_b": 0.4},
                          headers={"Authorization": f"Bearer {admin}-but-wrong"}, timeout=10)
    assert wrong.status_code == 401 and admin not in wrong.text
    no_token = requests.post(f"{router.url}/feedback", json={"request_id": "r", "label": "email"}, timeout=10)
    assert no_token.status_code == 401 and FEEDBACK_TOKEN not in no_token.text
    leaks = []
    for path in router.home.rglob("*"):
        if path.is_file() and path.suffix in ("", ".csv", ".log", ".json", ".html", ".md", ".txt"):
            text = path.read_text(errors="replace")
            leaks += [f"{path.name}: {name}" for name, token in (("admin", admin), ("feedback", FEEDBACK_TOKEN))
                      if token in text]
    assert not leaks, leaks
    client = registry.connect(mlflow_server.uri)
    name = router.env["TICKET_AB_MODEL_NAME"]
    for version in client.search_model_versions(f"name = '{name}'"):
        tags = " ".join(f"{k}={v}" for k, v in version.tags.items())
        assert admin not in tags and FEEDBACK_TOKEN not in tags
