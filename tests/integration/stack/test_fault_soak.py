"""The fault soak (`make soak`, under 10 minutes; not part of `make test`): acknowledged means kept.

A native stack serves steady load with feedback for 30% of the answers, and an operator keeps
setting registry aliases, while, in turn: a router worker is SIGKILLed, the scheduler is SIGKILLed,
PostgreSQL stops as `pg_ctl stop -m immediate` stops it (SIGQUIT to the postmaster) and supervisord
starts it again, and the disk holding the logs fills up (a small tmpfs of its own, so the soak
needs root to mount it) and is freed again. Afterwards every feedback row answered 202 is in the
log, no row is torn, every alias move answered 200 is in the registry, and the routers recovered by
themselves (nobody restarted them). The counts are printed. Last, every process of the stack,
supervisord included, is SIGKILLed at once, and `stack up` must come back without any cleanup.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import itertools
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from ops.health import wait_until
from ops.stack import checks, postgres
from ops.stack.topology import replica_name
from tests.integration.stack import stack_probe as probe
from tests.integration.stack.conftest import running_stack
from tests.integration.stack.stack_probe import StackHandle
from ticket_ab.names import CHAMPION
from ticket_ab.requestlog import read_feedback, read_requests

pytestmark = [pytest.mark.slow, pytest.mark.soak]
LOG_DISK_MB = 48
PHASE_S = 12.0  # steady load before and after each fault
TEXTS = ["vpn drops every few minutes", "printer on floor 3 jams", "invoice shows the wrong amount",
         "cannot log in after password reset", "laptop screen flickers", "new hire needs an account",
         "outlook keeps asking for my password", "order 12 more monitors"]


@pytest.fixture(scope="module")
def log_disk() -> Iterator[Path]:
    """A small disk of its own for the request and feedback logs, so filling it fills nothing else."""
    mount = Path(tempfile.mkdtemp(prefix="ticket-ab-soak-logs-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={LOG_DISK_MB}m,mode=0755", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"the soak mounts a {LOG_DISK_MB} MB tmpfs for the logs (needs root): " \
                                    f"{mounted.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


@pytest.fixture(scope="module")
def stack(log_disk: Path) -> Iterator[StackHandle]:
    with running_stack({"TICKET_AB_LOG_ROOT": str(log_disk)}) as handle:
        yield handle


class Load:
    """Clients of both replicas: /predict with a client token, feedback for 30% of the answers."""

    def __init__(self, handle: StackHandle) -> None:
        secrets = handle.secrets
        self.urls, self.stop = handle.router_urls, threading.Event()
        self.client = {"Authorization": f"Bearer {secrets['client_token']}"}
        self.agent = {"Authorization": f"Bearer {secrets['feedback_token']}"}
        self.acked: set[str] = set()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(4)]

    def _run(self, n: int) -> None:
        session, count = requests.Session(), itertools.count()
        while not self.stop.is_set():
            i = next(count)
            url = self.urls[(n + i) % len(self.urls)]
            body = {"text": TEXTS[i % len(TEXTS)], "customer_id": f"soak-{n}-{i % 97}"}
            answer = self._post(session, url + "/predict", body, self.client, "predict")
            if answer is not None and i % 10 < 3:
                feedback = {"request_id": answer["request_id"], "label": answer["topic"]}
                if self._post(session, url + "/feedback", feedback, self.agent, "feedback") is not None:
                    self.acked.add(answer["request_id"])
            time.sleep(0.02)

    def _post(self, session: requests.Session, url: str, body: dict, headers: dict, kind: str) -> dict | None:
        try:
            response = session.post(url, json=body, headers=headers, timeout=10)
        except requests.RequestException:
            self.statuses[f"{kind} connection error"] += 1
            return None
        self.statuses[f"{kind} {response.status_code}"] += 1
        return response.json() if response.status_code in (200, 202) else None

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


class Aliases:
    """An operator setting a new alias on the champion every half second, as the promoter account."""

    def __init__(self, handle: StackHandle, version: str) -> None:
        self.api = f"{handle.settings.tracking_uri}/api/2.0/mlflow/registered-models/alias"
        self.model, self.version, self.stop = handle.settings.model_name, version, threading.Event()
        secrets = handle.secrets
        self.auth = ("promoter", secrets["registry_promoter_password"])
        self.reader = ("router", secrets["registry_router_password"])
        self.done: list[str] = []
        self.failed = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for n in itertools.count():
            if self.stop.is_set():
                return
            alias = f"soak-{n}"
            try:
                response = requests.post(self.api, json={"name": self.model, "alias": alias, "version": self.version},
                                         auth=self.auth, timeout=10)
                ok = response.status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                self.done.append(alias)
            else:
                self.failed += 1
            time.sleep(0.5)

    def missing(self) -> list[str]:
        """Aliases answered 200 that the registry does not hold (read as the routers' account)."""
        def held(alias: str) -> bool:
            answer = requests.get(self.api, params={"name": self.model, "alias": alias}, auth=self.reader, timeout=10)
            return answer.status_code == 200 and answer.json()["model_version"]["version"] == self.version
        return [alias for alias in self.done if not held(alias)]

    def __enter__(self) -> Aliases:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _kill_a_router_worker(handle: StackHandle) -> str:
    master = psutil.Process(probe.pid_of(handle, replica_name(0)))
    worker = master.children()[0]
    worker.kill()
    wait_until(lambda: len(master.children()) >= 1 and worker.pid not in {c.pid for c in master.children()}, 60,
               "gunicorn replaces its killed worker")
    return f"router worker pid {worker.pid} SIGKILLed; gunicorn replaced it"


def _kill_the_scheduler(handle: StackHandle) -> str:
    restart = probe.kill_and_watch_restart(handle, "airflow-scheduler",
                                           lambda _: checks.airflow_healthy(handle.settings), None)
    return f"scheduler pid {restart.killed} SIGKILLed; supervisord restarted it healthy in {restart.seconds:.0f} s"


def _stop_postgres_immediately(handle: StackHandle) -> str:
    pg = handle.cluster()
    postmaster = probe.pid_of(handle, "postgres")
    started = time.monotonic()
    os.kill(postmaster, signal.SIGQUIT)  # what `pg_ctl stop -m immediate` sends: no checkpoint, crash recovery
    wait_until(lambda: probe.pid_of(handle, "postgres") not in (0, postmaster) and postgres.accepts_connections(pg),
               120, "supervisord starts PostgreSQL again and it accepts connections", interval_s=0.5)
    seconds = time.monotonic() - started
    return f"postgres pid {postmaster} stopped immediately; back after crash recovery in {seconds:.0f} s"


@contextlib.contextmanager
def _full(disk: Path) -> Iterator[int]:
    """Fill `disk` to the last byte, and free it again on the way out."""
    filler = disk / "filler"
    written = 0
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                written += os.write(fh.fileno(), chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    try:
        yield written
    finally:
        filler.unlink()


def _all_ready(handle: StackHandle) -> bool:
    try:
        return all(probe.ready(url)["ready"] for url in handle.router_urls)
    except OSError:  # a 503 (not ready) or no answer
        return False


def test_acknowledged_feedback_and_alias_moves_survive_crashes_an_immediate_postgres_stop_and_a_full_disk(
        stack, log_disk):
    champion = probe.aliases(stack)[CHAMPION]
    events = []
    with Load(stack) as load, Aliases(stack, champion) as aliases:
        time.sleep(PHASE_S)
        for fault in (_kill_a_router_worker, _kill_the_scheduler, _stop_postgres_immediately):
            events.append(fault(stack))
            time.sleep(PHASE_S)
        before_full = load.statuses["feedback 503"]
        with _full(log_disk) as filled:
            time.sleep(PHASE_S)
            refused_while_full = load.statuses["feedback 503"] - before_full
        events.append(f"log disk filled ({filled / 1e6:.0f} MB written), {refused_while_full} feedback answered 503 "
                      "while full, then freed")
        wait_until(lambda: _all_ready(stack), 120, "both routers ready again by themselves", interval_s=1)
        acked_after = len(load.acked)
        time.sleep(PHASE_S)
        assert len(load.acked) > acked_after, "feedback is acknowledged again after the disk was freed"
    feedback, logged = read_feedback(stack.settings.logs_dir), read_requests(stack.settings.logs_dir)
    missing_feedback = load.acked - set(feedback.rows["request_id"])
    missing_aliases = aliases.missing()
    print("\n".join(["", *events, *(f"{kind}: {n}" for kind, n in sorted(load.statuses.items())),
                     f"feedback acknowledged: {len(load.acked)}, missing from the log: {len(missing_feedback)}",
                     f"request rows logged: {len(logged.rows)}, torn request lines: {logged.malformed}, "
                     f"torn feedback lines: {feedback.malformed}",
                     f"alias moves done: {len(aliases.done)}, failed (reported): {aliases.failed}, "
                     f"done but missing: {len(missing_aliases)}"]))
    assert refused_while_full > 0  # the full disk was felt, and refused rather than acknowledged
    assert not missing_feedback
    assert logged.malformed == 0 and feedback.malformed == 0
    assert aliases.done and not missing_aliases
    assert load.statuses["predict 500"] == 0 and load.statuses["feedback 500"] == 0


def test_after_a_sigkill_of_every_stack_process_stack_up_comes_back_without_manual_cleanup(stack):
    champion = probe.aliases(stack)[CHAMPION]
    supervisord = psutil.Process(probe.run.manager(stack.settings).rpc().supervisor.getPID())
    everything = [supervisord, *supervisord.children(recursive=True)]
    for proc in everything:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    gone, alive = psutil.wait_procs(everything, timeout=30)
    assert not alive, f"still alive after SIGKILL: {alive}"
    started = time.monotonic()
    up = stack.cli("-m", "ops", "stack", "up", "--bootstrap-n", "1500", timeout=420)
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    print(f"\n{len(gone)} processes SIGKILLed; `stack up` came back in {time.monotonic() - started:.0f} s")
    wait_until(lambda: _all_ready(stack), 120, "both routers ready after the second `stack up`", interval_s=1)
    assert probe.aliases(stack)[CHAMPION] == champion  # the registry's state survived, nothing re-bootstrapped
