"""`make demo`: the whole loop on the embedded default, one real process per component.

MLflow on sqlite and the router under gunicorn, both run by the demo's supervisord (ops.background),
and the DAG via `airflow dags test`, all on 127.0.0.1. Each step prints the command a user would
type for it, so the demo doubles as a walkthrough. The servers stay up afterwards; `make stop` ends
them and their supervisord.

The demo owns its folder, `$TICKET_AB_HOME/demo` (`var/demo` by default), marked as the demo's when
it creates it: a `make stack` in the same home (its PostgreSQL cluster, its secrets) is never
touched, and a demo folder holding anything the demo did not create is refused, naming it, not wiped.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ops import background, dagrun, servers
from ops.env import REPO, child_env
from ops.health import ServiceError, wait_until
from ops.ports import mlflow_endpoint, router_endpoint
from ticket_ab.names import EXPERIMENT_DAG_ID
from ticket_ab.settings import Settings, get_settings

DEMO_DIR = "demo"  # the demo's own home, below TICKET_AB_HOME
MARKER = ".ticket-ab-demo"  # written into the demo's home when the demo creates it
BOOTSTRAP_N = 2000  # as `make stack`: below PyCaret's tuning threshold, so the demo's first champion takes ~30 s
RELOAD_S = 2.0  # the demo's router polls the registry often so the challenger shows up quickly
# The demo's experiment policy: the default ramp, with steps as short as a demo needs (no minimum time, fewer
# labelled customers per step); everything else as in production.
DEMO_ROLLOUT = {"start": "step", "min_step_minutes": 0.0, "min_customers": 20}
ROLLOUT_ROUNDS = 6  # traffic-then-look rounds before the demo gives up waiting for the experiment DAG
ROLLOUT_LINE = "rollout_outcome "  # the experiment DAG task's printed outcome (JSON follows)


class DemoError(RuntimeError):
    pass


def background_mlflow(settings: Settings) -> None:
    """`make mlflow`: the local MLflow server in the background, under the demo's supervisord."""
    background.start(settings, (background.MLFLOW,))
    print(f"MLflow is up at {settings.tracking_uri} (log {settings.mlflow_dir / 'server.log'}); "
          "`make stop` stops it")
    print(f"MLflow is {servers.OPEN_REGISTRY}")


def demo_settings() -> Settings:
    """The environment's settings with fresh tokens and customer key, a router that starts on the champion
    alone and polls the registry often (so the challenger shows up quickly).

    The load test scores with a client token (integration `api`, so the A/B analysis counts its traffic);
    anonymous scoring stays allowed on the demo's 127.0.0.1 router, so the README's curl lines work as typed,
    and is served but not counted (the summary says so)."""
    return get_settings(home=str(demo_home(get_settings())),
                        router={"admin_token": secrets.token_urlsafe(24), "feedback_token": secrets.token_urlsafe(24),
                                "client_token": secrets.token_urlsafe(24), "allow_anonymous": True,
                                "customer_key": secrets.token_urlsafe(24), "reload_s": RELOAD_S, "split_b": 0.0},
                        log={"settle_s": 0.0},  # the demo runs the DAG after its traffic has finished
                        rollout=DEMO_ROLLOUT)


def demo_home(settings: Settings) -> Path:
    """Where the demo of this environment keeps everything: a folder of its own below the home."""
    return settings.home / DEMO_DIR


def claim(home: Path) -> str:
    """Empty the demo's home for a fresh run, or refuse (DemoError, naming them) when it holds files the
    demo did not create: only a folder carrying the demo's marker is ever deleted."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).is_file():
            names = ", ".join(sorted(p.name for p in home.iterdir())[:5])
            raise DemoError(f"{home} holds files the demo did not create ({names}): it is not the demo's to "
                            "delete; move them away or set TICKET_AB_HOME to another folder")
        shutil.rmtree(home)
        said = f"resetting state: removed the previous demo's {home} (a fresh registry, logs and reports)"
    else:
        said = f"fresh state under {home}"
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("created by `make demo`; the demo deletes and recreates this folder\n")
    return said


class Demo:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.step_no = 0
        self.started = time.monotonic()
        self.tokens_file = settings.router_dir / "demo-tokens.env"
        self.admin_token = settings.router.admin_token
        self.feedback_token = settings.router.feedback_token
        self.router_url = router_endpoint(settings).url
        self.env = child_env(settings, secrets=True)
        self.decisions: list[dict] = []

    def step(self, title: str) -> None:
        self.step_no += 1
        elapsed = time.monotonic() - self.started
        print(f"\n==> [{self.step_no}] {title}   (+{elapsed:.0f} s)", flush=True)

    def run(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
        shown = "python " + " ".join(a if a != self.feedback_token else "$TICKET_AB_FEEDBACK_TOKEN" for a in args)
        print(f"$ {shown}", flush=True)
        result = subprocess.run([sys.executable, *args], env=self.env, cwd=REPO, text=True,
                                capture_output=capture)
        if capture:
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
        if result.returncode != 0:
            raise DemoError(f"step failed with exit code {result.returncode}: {shown}")
        return result

    def reset(self) -> None:
        """Stop the previous demo, check every port this one needs, then start from empty state."""
        stopped = background.stop(self.settings)
        if stopped:
            print(f"stopped the previous demo's services: {', '.join(stopped)}")
        for endpoint in (mlflow_endpoint(self.settings), router_endpoint(self.settings)):
            endpoint.ensure_free()
        print(claim(self.settings.home))
        self.settings.router_dir.mkdir(parents=True, exist_ok=True)
        self.tokens_file.touch(mode=0o600)  # private before any secret is in it
        self.tokens_file.chmod(0o600)
        self.tokens_file.write_text(f"TICKET_AB_ADMIN_TOKEN={self.admin_token}\n"
                                    f"TICKET_AB_FEEDBACK_TOKEN={self.feedback_token}\n"
                                    f"TICKET_AB_CLIENT_TOKEN={self.settings.router.client_token}\n")

    def start_mlflow(self) -> None:
        """The demo's supervisord, describing MLflow and the router, with MLflow started."""
        background.start(self.settings, (background.MLFLOW, background.ROUTER))
        print(f"MLflow is up at {self.settings.tracking_uri} (log {self.settings.mlflow_dir / 'server.log'})")
        print(f"MLflow is {servers.OPEN_REGISTRY}")

    def start_router(self) -> None:
        background.start_router(self.settings)
        print(f"router is up at {self.router_url}: {json.dumps(self.get('/ready'))}")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.router_url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def wait_for_challenger(self, deadline_s: float = 60.0) -> dict:
        def challenger_ready() -> dict | None:
            ready = self.get("/ready")
            return ready if _challenger_version(ready) else None

        return wait_until(challenger_ready, deadline_s, "the router serves the challenger", interval_s=0.5)

    def traffic(self, scenario: str, n: int, seed: int, feedback_rate: float) -> dict:
        out = self.settings.reports_dir / f"load_{scenario}_{seed}.json"
        self.run("load_test/testing.py", "--url", self.router_url, "--n", str(n), "--concurrency", "8",
                 "--scenario", scenario, "--feedback-rate", str(feedback_rate), "--label-noise", "0.03",
                 "--seed", str(seed), "--max-seconds", "240", "--json-out", str(out))
        return json.loads(out.read_text())

    def experiment_look(self, round_no: int) -> dict:
        """One run of the experiment DAG (`airflow dags test ticket_experiment`); its outcome."""
        log = self.settings.airflow_dir / "demo-runs" / f"{self.step_no}-experiment-{round_no}.log"
        print(f"$ airflow dags test {EXPERIMENT_DAG_ID}      # Airflow's output: {log}", flush=True)
        code = dagrun.run_dag(settings=self.settings, log_path=log, dag_id=EXPERIMENT_DAG_ID)
        outcomes = [json.loads(line.split(ROLLOUT_LINE, 1)[1]) for line in log.read_text(errors="replace").splitlines()
                    if ROLLOUT_LINE in line]
        if code != 0 or not outcomes:
            raise DemoError(f"the experiment DAG run failed (exit {code}); see {log}")
        outcome = outcomes[-1]
        print(f"experiment DAG: {outcome['action']} ({outcome['mode']}): {outcome['status']}: {outcome['reason']}")
        return outcome

    def autopilot(self) -> list[dict]:
        """Traffic with feedback, then a look of the experiment DAG, until it promotes or stops the challenger."""
        decisions = []
        for round_no in range(ROLLOUT_ROUNDS):
            served = self.get("/config")
            print(f"router: {served['ab_split_b'] * 100:g}% of customers on challenger v{served['challenger']} "
                  f"(set by {served['updated_by']})")
            self.traffic("new_product", 1500, 20 + round_no, 1.0)
            decisions.append(self.experiment_look(round_no))
            if decisions[-1]["done"] and decisions[-1]["action"] in ("promote", "stop"):
                return decisions
        raise DemoError(f"the experiment DAG took no final decision in {ROLLOUT_ROUNDS} rounds: "
                        f"{[d['action'] for d in decisions]}")

    def pipeline(self, label: str) -> None:
        """One DAG run; Airflow's chatter goes to a file, its one-line run report to the screen."""
        log = self.settings.airflow_dir / "demo-runs" / f"{self.step_no}-{label}.log"
        print(f"$ python -m ops pipeline      # Airflow's output: {log}", flush=True)
        code = dagrun.run_dag(settings=self.settings, log_path=log)
        reports = [line.split(" line=", 1)[1].strip('"') for line in log.read_text(errors="replace").splitlines()
                   if "run_report" in line and " line=" in line]
        for report in reports:
            print(f"DAG: {report}")
        if code != 0 or not reports:
            raise DemoError(f"the DAG run failed (exit {code}); see {log}")


def _challenger_version(ready: dict) -> str | None:
    challenger = ready.get("challenger")
    return challenger.get("version") if isinstance(challenger, dict) else None


def main() -> int:
    """The demo's steps; a taken port is refused before anything starts (the CLI prints it as one line)."""
    demo = Demo(demo_settings())
    demo.step("reset state")
    demo.reset()
    try:
        demo.step("start the MLflow tracking server (sqlite + local artifacts) under the demo's supervisord")
        demo.start_mlflow()
        demo.step("bootstrap the champion on generated baseline tickets (PyCaret picks the model)")
        demo.run("-m", "ops", "bootstrap", "--n", str(BOOTSTRAP_N))
        demo.step("start the A/B router under gunicorn")
        demo.start_router()
        demo.step("baseline traffic, then the drift DAG: nothing has changed, so it should skip")
        demo.traffic("baseline", 600, 11, 0.3)
        demo.pipeline("baseline")
        demo.step("a new product launches: drifted traffic with agent feedback, then the DAG retrains")
        demo.traffic("new_product", 1500, 12, 0.3)
        demo.pipeline("new_product")
        ready = demo.wait_for_challenger()
        print(f"router hot-swapped the challenger in without a restart: v{_challenger_version(ready)}, served to "
              f"{demo.get('/config')['ab_split_b'] * 100:g}% of customers (the rollout policy's first step)")
        demo.step("the experiment DAG takes over: after each batch of traffic it holds, ramps, promotes or stops")
        demo.decisions = demo.autopilot()
        demo.step("the human's A/B report on the same logs (analysis.py; `--promote` still promotes by hand)")
        demo.run("analysis/analysis.py")
    except (DemoError, ServiceError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        print("services that did start are still up for inspection; `make stop` ends them", file=sys.stderr)
        return 1
    summarize(demo)
    return 0


def summarize(demo: Demo) -> None:
    s = demo.settings
    summary_path = s.reports_dir / "ab_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    drift_reports = sorted((s.reports_dir / "drift").glob("*.html")) if (s.reports_dir / "drift").exists() else []
    print(f"\n==> done in {time.monotonic() - demo.started:.0f} s")
    print("decisions of the experiment DAG:")
    for d in demo.decisions:
        print(f"  {d['action']:<8} {d['status']}: {d['reason'][:160]}")
    verdict = summary.get("verdict") or {}
    print(f"verdict: {verdict.get('text', '?')} ({verdict.get('reason', 'no A/B summary written')})")
    for arm, info in (summary.get("arms") or {}).items():
        accuracy = info.get("accuracy")
        shown = f"{accuracy:.3f}" if isinstance(accuracy, float) else "n/a"
        print(f"  arm {arm}: accuracy {shown} on {info.get('labelled')} labelled requests")
    print(f"MLflow UI:         {s.tracking_uri}")
    print(f"router:            {demo.router_url}  (tokens in {demo.tokens_file})")
    if drift_reports:
        print(f"drift report:      {drift_reports[-1]}")
    print(f"A/B report:        {s.reports_dir / 'ab_report.html'}")
    print(f"A/B figure:        {s.reports_dir / 'ab_report.png'}")
    print(f"services are still running under supervisord (`supervisorctl -c {background.manager(s).config} "
          "status`); `make stop` stops them")
    print(f"to continue by hand on the demo's state: export TICKET_AB_HOME={s.home}")
