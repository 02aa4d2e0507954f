"""The production topology, natively, under supervisord: the scheduler retrains on its own, both
replicas serve it, crashes of the scheduler or of a replica lose no request row and half-move no
alias, and supervisord brings every killed service back by itself.

One stack for the module (see conftest.py); the tests run in order, as the story of a deployment:
it comes up, its registry answers nobody without an account and each account only what its role
needs, no process holds a secret it does not use, baseline traffic leaves the champion alone, a new
product's traffic is retrained on (while the scheduler and a replica are killed and restarted by
supervisord), the A/B test promotes the challenger (as the `promoter` account), a version whose
files were swapped after registration is never unpickled, every long-running service is SIGKILLed
in turn and must come back, and finally no file of the stack but its secret files holds a secret.
"""

from __future__ import annotations

import json
import pickle
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime

import pytest

from ops.health import http_ok, wait_until
from ops.stack import checks, postgres
from ops.stack.run import manager
from ops.stack.topology import Paths, load_secrets
from tests.integration.router.router_harness import EXAMPLE
from tests.integration.stack import registry_probe as reg
from tests.integration.stack import stack_probe as probe
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab import registry
from ticket_ab.names import CHALLENGER, CHAMPION, DAG_ID, REQUEST_LOG_ASSET, WATCH_DAG_ID
from ticket_ab.registry import ARTIFACT_DIGEST_TAG

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


def test_postgres_acknowledges_a_commit_only_once_it_is_on_disk(stack):
    assert probe.query(stack, "SHOW synchronous_commit") == [("on",)]
    assert probe.query(stack, "SHOW fsync") == [("on",)]


def test_a_second_stack_up_of_the_same_home_is_refused_with_one_line(stack):
    again = stack.cli("-m", "ops", "stack", "up", timeout=120)
    assert again.returncode == 2
    manager_pid = probe.run.manager(stack.settings).rpc().supervisor.getPID()
    assert again.stderr.startswith(f"error: the stack of {stack.settings.home} is already running (supervisord pid "
                                   f"{manager_pid}; ")
    assert f"postgres pid {probe.pid_of(stack, 'postgres')}" in again.stderr
    assert again.stderr.endswith("; `make stack-down` first\n") and again.stderr.count("\n") == 1


def test_without_credentials_every_write_to_the_registry_is_refused(stack):
    champion = probe.aliases(stack)[CHAMPION]
    answers = {what: reg.call(stack, *request).status_code for what, request in reg.writes(stack, champion).items()}
    assert answers == dict.fromkeys(answers, 401)
    name = stack.settings.model_name
    assert reg.call(stack, "GET", "/registered-models/get", {"name": name}).status_code == 401  # reading, too
    assert probe.aliases(stack) == {CHAMPION: champion} and probe.versions(stack) == 1


def test_each_account_is_refused_what_its_role_must_not_do(stack):
    """The router only reads; the pipeline registers and sets `challenger` but never moves the champion (our
    auth app's rule: MLflow's EDIT would allow it); nobody but the admin creates models or rewrites a digest."""
    champion = probe.aliases(stack)[CHAMPION]
    writes = reg.writes(stack, champion)
    forbidden = {"router": set(writes),
                 "pipeline": {"move alias champion", "remove alias champion", "create a model", "rename the model"},
                 "autopilot": {"create a model"}, "promoter": {"create a model"}, "operator": {"create a model"}}
    for account, refused in forbidden.items():
        answers = {what: reg.call(stack, *writes[what], auth=reg.account(stack, account)).status_code
                   for what in sorted(refused)}
        assert answers == dict.fromkeys(answers, 403), f"{account}: {answers}"
    digest = {"name": stack.settings.model_name, "version": champion, "key": ARTIFACT_DIGEST_TAG, "value": "0" * 64}
    for account in ("pipeline", "autopilot", "promoter", "operator"):
        answer = reg.call(stack, "POST", "/model-versions/set-tag", digest, auth=reg.account(stack, account))
        assert answer.status_code == 403 and "written once" in answer.text, account
    # Promotion's account may move the champion (here onto the version it already is: nothing changes).
    assert reg.call(stack, *writes["move alias champion"], auth=reg.account(stack, "promoter")).status_code == 200
    assert probe.aliases(stack) == {CHAMPION: champion} and probe.versions(stack) == 1


def test_no_secret_is_on_a_command_line_or_in_a_process_that_does_not_use_it(stack):
    """Every process of the stack (psutil, /proc/<pid>/environ read as root): no secret on any command line,
    none in an environment but the one its program was given, and each secret only where it is used."""
    secrets, declared, seen = reg.secret_values(stack), reg.declared_environments(stack), reg.processes(stack)
    held_by: dict[str, set[str]] = {}
    postmaster = reg.processes_of(seen, "postgres")[0]
    for process in seen:
        if process.cmdline.startswith("postgres: ") and process.ppid == postmaster.pid:
            continue  # a backend: forked (no exec) by the postmaster, whose environment it has, and retitled over it
        assert "PATH" in process.environ, f"{process.program} pid {process.pid}: /proc environ unreadable"
        on_line = [name for name, value in secrets.items() if value in process.cmdline]
        assert not on_line, f"{process.program} pid {process.pid} has {on_line} on its command line"
        held = {name for name, value in secrets.items() if any(value in v for v in process.environ.values())}
        given = {name for name, value in secrets.items()
                 if any(value in v for v in declared.get(process.program, {}).values())}
        assert held <= given, f"{process.program} pid {process.pid} holds {held - given}, which it was not given"
        held_by.setdefault(process.program, set()).update(held)
    print(f"{len(seen)} processes checked: " + "; ".join(f"{p}: {sorted(h)}" for p, h in sorted(held_by.items())))
    for bare in ("supervisord", "reaper", "postgres", "prometheus"):
        assert not held_by.get(bare), f"{bare} holds {held_by.get(bare)}"
    registry_passwords = {name for name in secrets if name.startswith("registry_")}
    assert held_by["router"] & registry_passwords == held_by["router-2"] & registry_passwords == {
        "registry_router_password"}
    assert held_by["airflow-scheduler"] & registry_passwords == {"registry_autopilot_password"}
    for quiet in ("airflow-apiserver", "airflow-dag-processor", "airflow-triggerer", "postgres", "prometheus"):
        assert not held_by[quiet] & registry_passwords, quiet
    assert {"registry_admin_password", "postgres_password", "mlflow_secret_key"} <= held_by["mlflow"]
    assert not held_by["router"] & {"postgres_password", "jwt_secret", "fernet_key", "registry_admin_password"}


def test_the_stacks_secret_files_are_readable_by_their_owner_only(stack):
    paths, pg = Paths.of(stack.settings), stack.cluster()
    files = [paths.secrets, pg.password_file, paths.registry_auth, paths.airflow_passwords,
             manager(stack.settings).config]
    assert {str(f): f.stat().st_mode & 0o777 for f in files} == {str(f): 0o600 for f in files}
    folders = [paths.registry_auth.parent, paths.airflow_passwords.parent, paths.supervisor, stack.settings.mlflow_dir]
    assert {str(d): d.stat().st_mode & 0o777 for d in folders} == {str(d): 0o700 for d in folders}
    assert "Password for user" not in (paths.log("airflow-apiserver")).read_text()  # Airflow generated none


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
    """Retraining is paused first: the A/B traffic is drifted too, and a run it triggered could offer a newer
    challenger than the one the log tested, which the promotion then (rightly) refuses."""
    _pause_retraining(stack)
    wait_until(lambda: not any(r["state"] in ("queued", "running") for r in probe.retrain_runs(stack)),
               RUN_DEADLINE_S, "no retraining run is in flight")
    challenger = probe.aliases(stack)[CHALLENGER]
    outs = [tmp_path / f"ab-{i}.json" for i in range(2)]
    procs = [probe.traffic(stack, url, "new_product", 3000, 30 + i, out, feedback_rate=1.0) for i, (url, out) in
             enumerate(zip(stack.router_urls, outs, strict=True))]
    assert all(s["passed"] for s in probe.finished_traffic(procs, outs))

    refused = stack.cli("-m", "ops", "promote", "--reason", "as the pipeline", account="pipeline")
    assert refused.returncode == 2 and "account 'pipeline' lacks the permission" in refused.stderr, refused.stderr
    assert probe.aliases(stack).get(CHALLENGER) == challenger, "the pipeline's account moved an alias"
    result = stack.cli("analysis/analysis.py", "--promote", account="promoter")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert probe.aliases(stack)[CHAMPION] == challenger, result.stdout[-3000:]


def _pause_retraining(stack) -> None:
    """The refusal tests move `challenger` themselves, so the scheduler should not offer one meanwhile: both DAGs
    are paused (as `airflow dags pause` does, in the metadata database). A run already training may still
    finish and move `challenger` on, which `_refused_by_every_replica` allows for."""
    conn = postgres.connect(stack.cluster(), "airflow")
    assert conn is not None, "the stack's PostgreSQL does not accept connections"
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE dag SET is_paused = true WHERE dag_id IN (%s, %s)", (DAG_ID, WATCH_DAG_ID))
    finally:
        conn.close()


def _refused_by_every_replica(stack, version: str, why: str) -> None:
    """Both replicas name the refused challenger in /ready and their metric, serve none, and keep scoring."""
    champion = probe.aliases(stack)[CHAMPION]

    def refused() -> bool:
        answers = [probe.ready(url) for url in stack.router_urls for _ in range(4)]  # reaches both workers
        for body in answers:
            assert (body.get("challenger") or {}).get("version") != version, f"v{version} is served: {body}"
        if all(f"challenger v{version} refused: {why}" in (body["last_error"] or "") for body in answers):
            return True
        # a challenger the scheduler offered since replaces the refusal in last_error; the counter keeps it
        moved_on = probe.aliases(stack).get(CHALLENGER) != version
        return moved_on and all(reg.refusals(url, CHALLENGER, version) >= 1 for url in stack.router_urls)

    wait_until(refused, 60, f"both replicas refuse v{version}", interval_s=0.5)
    for url in stack.router_urls:  # the scheduler may offer a challenger of its own meanwhile: that one may serve
        served = probe.served_versions(url)
        assert served[CHAMPION] == champion and served[CHALLENGER] != version, served
        assert reg.refusals(url, CHALLENGER, version) >= 1
        answer = reg.predict(stack, url, "vpn drops every hour")  # keeps scoring, never with the refused version
        assert answer.status_code == 200 and answer.json()["model_version"] != version, answer.text


def test_a_version_whose_artifact_was_swapped_after_registration_is_never_unpickled(stack, tmp_path):
    """As the pipeline would, register a version (its digest recorded); then swap its pickle in the artifact
    store for one whose unpickling runs code, and point `challenger` at it: no replica ever loads it."""
    marker = tmp_path / "the-swapped-pickle-ran"
    settings = stack.settings
    _pause_retraining(stack)
    with reg.acting_as(stack, "pipeline"):
        version = registry.publish(settings.tracking_uri, settings.model_name, fitted_pipeline(seed=3), EXAMPLE,
                                   why="security test", experiment=settings.experiment)
    reg.stored_model_file(stack, version).write_bytes(pickle.dumps(reg.Planted(marker)))
    with reg.acting_as(stack, "pipeline"):
        registry.move_alias(registry.connect(settings.tracking_uri), settings.model_name, CHALLENGER, version,
                            why="security test: a swapped artifact")
    _refused_by_every_replica(stack, version, "its files hash to")
    assert not marker.exists(), "a router unpickled the swapped file"
    with reg.acting_as(stack, "operator"):
        registry.move_alias(registry.connect(settings.tracking_uri), settings.model_name, CHALLENGER, None,
                            why="security test done")


def test_a_version_registered_without_a_digest_is_refused_before_it_is_fetched(stack):
    """The pipeline's account can copy a version without our registration call (plain REST): no digest, no load."""
    _pause_retraining(stack)
    name, champion = stack.settings.model_name, probe.aliases(stack)[CHAMPION]
    pipeline = reg.account(stack, "pipeline")
    created = reg.call(stack, "POST", "/model-versions/create", {"name": name, "source": f"models:/{name}/{champion}"},
                       auth=pipeline)
    assert created.status_code == 200, created.text
    version = created.json()["model_version"]["version"]
    moved = reg.call(stack, "POST", "/registered-models/alias", {"name": name, "alias": CHALLENGER, "version": version},
                     auth=pipeline)
    assert moved.status_code == 200, moved.text
    _refused_by_every_replica(stack, version, f"it carries no {ARTIFACT_DIGEST_TAG} tag")
    removed = reg.call(stack, "DELETE", "/registered-models/alias", {"name": name, "alias": CHALLENGER},
                       auth=reg.account(stack, "operator"))
    assert removed.status_code == 200, removed.text


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


def _config_call(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
    """GET /config, or POST it with `body`: status, JSON answer and ETag."""
    request = urllib.request.Request(url + "/config", data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json", **(headers or {})},
                                     method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp), resp.headers.get("ETag", "")
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), exc.headers.get("ETag", "")


def test_config_changes_are_compare_and_swap_on_the_stacks_postgres_and_both_replicas_follow(stack):
    """Both replicas share the `config` database as the routers' least-privilege role (ops.stack.configdb)."""
    one, two = stack.router_urls
    admin = {"Authorization": f"Bearer {stack.secrets['admin_token']}"}
    _, _, etag = _config_call(one)
    status, applied, new_etag = _config_call(two, {"ab_split_b": 0.35}, admin | {"If-Match": etag})
    assert status == 200 and new_etag == f'"{applied["version"]}"'
    status, refused, current = _config_call(one, {"ab_split_b": 0.65}, admin | {"If-Match": etag})
    assert (status, refused["error"], current) == (412, "precondition_failed", new_etag)
    wait_until(lambda: all(_config_call(url)[1] == applied for url in stack.router_urls), 30,
               "both replicas serve the applied config")


def test_no_file_of_the_stack_but_its_secret_files_holds_a_secret(stack):
    """Run last, after everything above wrote its logs: supervisord's, every service's, Airflow's task logs,
    the request logs, reports and artifacts hold no secret value (PostgreSQL's own data files are not read)."""
    paths, pg = Paths.of(stack.settings), stack.cluster()
    secret_files = {paths.secrets, pg.password_file, paths.registry_auth, paths.airflow_passwords,
                    manager(stack.settings).config, pg.data}
    logs = sorted(paths.logs.glob("*.log"))
    assert {log.stem for log in logs} >= {"mlflow", "registry-init", "bootstrap", "router", "airflow-scheduler"}
    assert reg.files_holding(stack.settings.home, reg.secret_values(stack), secret_files) == {}


def test_what_the_services_wrote_with_tickets_in_it_is_not_readable_by_other_users(stack):
    """The request and feedback logs, the DAG's run folders and run reports, the label store: tickets, so 0640 / 0750
    at most (supervisord runs every program with umask 027; the log writer sets its modes itself)."""
    settings = stack.settings
    roots = [settings.logs_dir, settings.reports_dir / "runs", settings.data_dir]
    written = [path for root in roots if root.exists() for path in [root, *root.rglob("*")]]
    assert any(path.is_file() for path in written)
    readable = [f"{path} {path.stat().st_mode & 0o777:o}" for path in written if path.stat().st_mode & 0o007]
    assert not readable, readable
