"""The production topology, natively, under supervisord: the scheduler retrains on its own, both
replicas serve it, crashes of the scheduler or of a replica lose no request row and half-move no
alias, and supervisord brings every killed service back by itself.

One stack for the module (see conftest.py); the tests run in order, as the story of a deployment:
it comes up, baseline traffic leaves the champion alone, a new product's traffic is retrained on
(while the scheduler and a replica are killed and restarted by supervisord), the A/B test promotes
the challenger, and finally every long-running service is SIGKILLed in turn and must come back.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import datetime

import pytest

from ops.health import http_ok, wait_until
from ops.stack import checks, postgres
from ops.stack.run import manager
from ops.stack.topology import Paths, load_secrets
from tests.integration.stack import stack_probe as probe
from ticket_ab.names import CHALLENGER, CHAMPION, REQUEST_LOG_ASSET

pytestmark = pytest.mark.slow
RUN_DEADLINE_S = 420


def test_stack_comes_up_with_a_champion_behind_both_replicas_and_prometheus_scraping_them(stack):
    assert "stack up in" in stack.up_output
    champion = probe.aliases(stack)[CHAMPION]
    for url in stack.router_urls:
        assert probe.served_versions(url)[CHAMPION] == champion

    def targets_up() -> list[str] | None:
        url = f"http://127.0.0.1:{stack.settings.stack.prometheus_port}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=5) as resp:
            active = json.load(resp)["data"]["activeTargets"]
        up = sorted(t["labels"]["instance"] for t in active if t["health"] == "up")
        return up if len(up) == len(stack.router_urls) else None

    wait_until(targets_up, 60, "Prometheus scrapes both replicas", interval_s=1)


def test_a_second_stack_up_of_the_same_home_is_refused_with_one_line(stack):
    again = stack.cli("-m", "ops", "stack", "up", timeout=120)
    assert again.returncode == 2
    assert again.stderr == (f"error: the stack of {stack.settings.home} is already running; "
                            "`make stack-down` first\n")


def test_baseline_traffic_alone_triggers_a_run_that_retrains_nothing(stack, tmp_path):
    before, versions = len(probe.retrain_runs(stack)), probe.versions(stack)
    outs = [tmp_path / f"baseline-{i}.json" for i in range(2)]
    procs = [probe.traffic(stack, url, "baseline", 200, 10 + i, out) for i, (url, out) in
             enumerate(zip(stack.router_urls, outs, strict=True))]
    assert all(s["passed"] for s in probe.finished_traffic(procs, outs))

    finished = probe.wait_for_new_run(stack, before, RUN_DEADLINE_S)
    assert finished["run_type"] == "asset_triggered", f"{finished}: not started by the {REQUEST_LOG_ASSET} asset"
    assert finished["state"] == "success"
    tasks = probe.task_tries(stack, finished["run_id"])
    assert tasks["skip"][0] == "success" and tasks["train_challenger"][0] == "skipped"
    assert probe.versions(stack) == versions
    assert CHALLENGER not in probe.aliases(stack)


def test_drifted_traffic_is_retrained_by_the_scheduler_through_a_scheduler_and_a_replica_crash(stack, tmp_path):
    """Agents label 60% of the drifted tickets: the gate needs enough untouched gold to be sure of the gain."""
    before, since = len(probe.retrain_runs(stack)), probe.now_utc()
    outs = [tmp_path / f"drift-{i}.json" for i in range(2)]
    procs = [probe.traffic(stack, url, "new_product", 700, 20 + i, out, feedback_rate=0.6, max_error_rate=1.0)
             for i, (url, out) in enumerate(zip(stack.router_urls, outs, strict=True))]
    wait_until(lambda: probe.logged_requests(stack, since) >= 300, 60, "300 drifted requests are logged")
    replica = probe.pid_of(stack, "router-2")
    probe.kill_tree(replica)
    answered = sum(s["answered"] for s in probe.finished_traffic(procs, outs))
    assert probe.logged_requests(stack, since) >= answered, "an answered request has no log row"
    _restarted_by_supervisord(stack, "router-2", replica, lambda: http_ok(stack.router_urls[1] + "/ready"))

    def training() -> bool:
        runs = probe.retrain_runs(stack)[before:]
        return bool(runs) and probe.task_tries(stack, runs[0]["run_id"]).get("train_challenger", ("",))[0] == "running"

    wait_until(training, RUN_DEADLINE_S, "the scheduler starts train_challenger", interval_s=1)
    scheduler = probe.pid_of(stack, "airflow-scheduler")
    probe.kill_tree(scheduler)
    _restarted_by_supervisord(stack, "airflow-scheduler", scheduler,
                              lambda: checks.airflow_healthy(stack.settings, ("airflow-scheduler",)))

    finished = probe.wait_for_new_run(stack, before, RUN_DEADLINE_S)
    assert finished["run_type"] == "asset_triggered" and finished["state"] == "success", finished
    state, tries = probe.task_tries(stack, finished["run_id"])["train_challenger"]
    assert state == "success" and tries >= 2, "the killed train_challenger was not run again"
    assert CHALLENGER in probe.aliases(stack), probe.run_outcome(stack, finished["run_id"])
    challenger = probe.aliases(stack)[CHALLENGER]

    def swapped() -> bool:
        return all(probe.served_versions(url)[CHALLENGER] == challenger for url in stack.router_urls)

    wait_until(swapped, 30, "both replicas serve the new challenger", interval_s=0.5)


def test_the_ab_analysis_promotes_the_challenger_in_the_postgres_registry(stack, tmp_path):
    challenger = probe.aliases(stack)[CHALLENGER]
    outs = [tmp_path / f"ab-{i}.json" for i in range(2)]
    procs = [probe.traffic(stack, url, "new_product", 3000, 30 + i, out, feedback_rate=1.0) for i, (url, out) in
             enumerate(zip(stack.router_urls, outs, strict=True))]
    assert all(s["passed"] for s in probe.finished_traffic(procs, outs))

    result = stack.cli("analysis/analysis.py", "--promote")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert probe.aliases(stack)[CHAMPION] == challenger, result.stdout[-3000:]


def _restarted_by_supervisord(stack, name: str, killed: int, healthy: Callable[[], bool]) -> None:
    """Nobody restarts it but supervisord: a new pid, RUNNING, and its health check passes."""
    def back() -> bool:
        info = manager(stack.settings).info(name)
        return info["statename"] == "RUNNING" and info["pid"] not in (0, killed) and healthy()

    wait_until(back, 120, f"supervisord restarts {name} (pid {killed} was killed)", interval_s=0.5)


def _fresh_heartbeat(stack, component: str) -> Callable[[float], bool]:
    """Airflow reports `component` healthy with a heartbeat newer than the kill (the old one's would
    still count as healthy for a while, so a heartbeat is the proof the restarted process works)."""
    def fresh(killed_at: float) -> bool:
        part = checks.airflow_health(stack.settings).get(component) or {}
        beat = part.get(f"latest_{component}_heartbeat")
        return part.get("status") == "healthy" and bool(beat) and datetime.fromisoformat(beat).timestamp() > killed_at
    return fresh


def test_supervisord_restarts_every_long_running_service_that_is_killed(stack):
    """The issue's proof: SIGKILL the main process supervisord reports for each long-running service (as
    a crash or the OOM killer would); supervisord alone restarts it, and the new process serves."""
    settings, pg = stack.settings, stack.cluster()
    health = checks.checks(settings, pg, load_secrets(settings, Paths.of(settings)))
    serving = {name: (lambda _, check=check: check()) for name, check in health.items()}
    env = stack.env
    victims = [("prometheus", settings.stack.prometheus_port), ("router", settings.router.port),
               ("router-2", settings.router.port + 1), ("airflow-apiserver", settings.airflow_port),
               ("airflow-scheduler", int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"])),
               ("airflow-dag-processor", None),
               ("airflow-triggerer", int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"])),
               ("mlflow", settings.mlflow_port), ("postgres", settings.stack.postgres_port)]
    fresh = {name: _fresh_heartbeat(stack, component) for name, component in checks.COMPONENTS.items()}
    restarts = [probe.kill_and_watch_restart(stack, name, fresh.get(name, serving[name]), port)
                for name, port in victims]
    print("\n".join(f"{r.name:22} pid {r.killed} SIGKILLed -> pid {r.restarted} healthy in {r.seconds:.1f} s"
                    for r in restarts))
    assert {r.name for r in restarts} == set(health)
    wait_until(lambda: all(check() for check in health.values()), 180,
               "every service of the stack passes its health check after the kills")
    assert postgres.accepts_connections(pg)
