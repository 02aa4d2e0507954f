"""Three router instances over one MLflow registry and one shared log root: the issue's scale-out promise.

Each instance is its own gunicorn master (2 workers) with its own home (state dir, model cache,
config cache), started as `make serve` starts one; all three point TICKET_AB_LOG_ROOT at one
folder, as replicas on a shared volume would. The test checks, with real processes:

- a POST /config to one instance is in effect on every worker of all three within reload_s + 1 s;
- a customer gets the same arm from all three;
- 20,000 concurrent requests spread over the three, while one worker of instance 2 is SIGKILLed
  part-way, leave exactly one complete row per request in the shared log.

What "exactly" means. Every request carries its own client `request_id`, and a client that gets no
answer (connection reset, timeout, 5xx) sends the SAME request again, as a careful client does. So:
every sent id is in the log (0 lost), every line is a whole row with a valid checksum (0 torn),
every row is complete (it says what the answer said) and the distinct request ids are exactly the
20,000 sent. A SIGKILL can still land after a worker wrote a request's row and before its answer
left: the client retries and a second row with the same id appears. No router can prevent that
without shared state between replicas (the write and the answer are not one atomic act); the id
makes the two rows recognisably one request. So duplicates are counted and reported, and must be
rare: only requests whose first try failed, at most one per thread of the killed worker; and the
DAG's window (first occurrence of each id) counts each request once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest
import requests

from retrain.tasks.window import new_requests
from tests.integration.router.router_harness import (
    ADMIN_TOKEN,
    Router,
    register,
    router_settings,
    running_routers,
    set_config,
    sigkill_a_worker,
    wait_replaced,
    worker_pids,
)
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab.names import A, B
from ticket_ab.requestlog import read_requests

NAME = "router-scale-out"
INSTANCES = 3
REQUESTS = 20_000
CLIENT_THREADS = 24
KILL_AFTER = 5_000  # answers before one worker of instance 2 is SIGKILLed
RETRIES = 5  # further tries of a request that got no answer (same request_id)
BACKOFF_S = 0.05  # doubled per retry
DEADLINE_S = 300.0
REQUEST_TIMEOUT_S = 30.0
TEXTS = ("vpn drops every hour since the update", "printer is jammed on the third floor",
         "invoice charged twice this month", "outlook mailbox is full again", "laptop battery does not charge",
         "need a license quote for 20 seats", "app crash with a stack trace on login", "password reset link expired")


@dataclass
class Sent:
    """What the client saw of one request: its final answer and every failed try before it."""

    status: int = 0  # the last HTTP status (0: never answered)
    body: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@dataclass
class Progress:
    """The running count of answered requests, and the signal that the kill is due."""

    answered: int = 0
    kill_due: threading.Event = field(default_factory=threading.Event)

    def count(self, answered: int) -> None:
        self.answered = max(self.answered, answered)
        if answered == KILL_AFTER:
            self.kill_due.set()


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory):
    return tmp_path_factory.mktemp("shared-log-root")


@pytest.fixture(scope="module")
def instances(tmp_path_factory, mlflow_server, shared_log):
    homes = [tmp_path_factory.mktemp(f"instance-{n}") for n in range(1, INSTANCES + 1)]
    settings = [router_settings(home, mlflow_server.uri, NAME, log_root=shared_log) for home in homes]
    assert len({s.model_name for s in settings}) == 1 and len({s.logs_dir for s in settings}) == 1
    register(settings[0], fitted_pipeline(seed=0), "champion")
    register(settings[0], fitted_pipeline(seed=1, per_topic=20), "challenger")
    with running_routers(settings) as running:
        yield running


def test_a_config_posted_to_one_instance_is_in_effect_on_every_worker_of_all_three_within_reload_plus_one_s(
        instances):
    one, two, three = instances
    set_config(one, two, three, ab_split_b=0.5, mode="split")
    posted = three.post("/config", {"ab_split_b": 0.3}, token=ADMIN_TOKEN, headers={"If-Match": "*"})
    assert posted.status_code == 200, posted.text
    time.sleep(max(r.settings.router.reload_s for r in instances) + 1.0)  # the promise itself, not a poll

    def in_effect(body: dict[str, Any]) -> None:
        assert body["config"] == posted.json(), f"worker {body['worker_pid']} still serves {body['config']}"

    for router in instances:
        assert len(router.each_worker(check=in_effect)) == router.settings.router.workers


def test_a_customer_gets_the_same_arm_from_all_three_instances(instances):
    config = set_config(*instances, ab_split_b=0.5, mode="split")
    payloads = [{"text": TEXTS[i % len(TEXTS)], "customer_id": f"customer-{i}"} for i in range(200)]
    arms = []
    for router in instances:
        answers = router.fire(payloads)
        assert {status for status, _ in answers} == {200}
        arms.append([body["variant"] for _, body in answers])
    differing = [payloads[i]["customer_id"] for i, arm in enumerate(zip(*arms, strict=True)) if len(set(arm)) > 1]
    assert not differing, f"customers with different arms on different instances: {differing}"
    assert set(arms[0]) == {A, B}, f"experiment {config['experiment_id']} at an even split used one arm only"


def test_20000_concurrent_requests_leave_exactly_one_complete_row_each_while_a_worker_is_sigkilled(
        instances, shared_log):
    config = set_config(*instances, ab_split_b=0.5, mode="split")
    payloads = [{"text": TEXTS[i % len(TEXTS)], "customer_id": f"customer-{i % 1000}", "ticket_id": f"T-{i}",
                 "request_id": f"scale-out-{i:05d}"} for i in range(REQUESTS)]
    progress = Progress()
    started = time.monotonic()
    with ThreadPoolExecutor(1) as side:
        kill = side.submit(_kill_a_worker_part_way, instances[1], progress)
        try:
            sent = _send_all([router.url for router in instances], payloads, progress.count)
        finally:
            progress.kill_due.set()  # traffic over (or failed) before the kill: it happens now and is reported
        victim, replacement, at_kill, at_ready = kill.result()
    seconds = time.monotonic() - started
    unanswered = [(p["request_id"], s.status, s.failures) for p, s in zip(payloads, sent, strict=True)
                  if s.status != 200]
    assert not unanswered, f"{len(unanswered)} requests got no answer after {RETRIES} retries: {unanswered[:5]}"
    assert at_ready < REQUESTS, f"the worker was replaced only after the traffic ({at_kill}, {at_ready} answers)"

    read = read_requests(shared_log)
    rows = read.rows[read.rows["request_id"].str.startswith("scale-out-")]
    duplicates = int(rows["request_id"].duplicated().sum())
    retried = sum(bool(s.failures) for s in sent)
    print(f"\nscale-out: {REQUESTS} requests over {INSTANCES} instances in {seconds:.1f} s "
          f"({REQUESTS / seconds:.0f} requests/s, {CLIENT_THREADS} client threads); {len(rows)} rows, "
          f"{rows['request_id'].nunique()} distinct ids, {duplicates} duplicates, {read.malformed} malformed; "
          f"{retried} requests retried; worker {victim} of instance 2 SIGKILLed after {at_kill} answers, "
          f"replacement {replacement} ready after {at_ready}")
    assert read.malformed == 0, f"{read.malformed} torn or malformed lines in the shared log"
    _assert_one_complete_row_per_request(rows, payloads, sent, config["experiment_id"])
    _assert_duplicates_are_rare_retries_counted_once(rows, payloads, sent, instances[1].settings.router.threads)


def _send_all(urls: list[str], payloads: list[dict[str, Any]], on_answer: Callable[[int], object]) -> list[Sent]:
    """POST every payload, spread over `urls`, from CLIENT_THREADS keep-alive sessions; one Sent each.

    Threads take the next payload from a shared counter, so the load stays even however slow one
    instance gets; `on_answer(n)` is called with the running count of answered requests.
    """
    sent = [Sent() for _ in payloads]
    order, answered = itertools.count(), itertools.count(1)  # next() on a count is atomic in CPython
    end = time.monotonic() + DEADLINE_S

    def client() -> None:
        with requests.Session() as session:
            while (i := next(order)) < len(payloads):
                if time.monotonic() > end:
                    raise TimeoutError(f"{DEADLINE_S:.0f} s passed with {i} of {len(payloads)} requests sent")
                sent[i] = _send(session, urls, i, payloads[i])
                on_answer(next(answered))

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        for done in [pool.submit(client) for _ in range(CLIENT_THREADS)]:
            done.result()
    return sent


def _send(session: requests.Session, urls: list[str], i: int, payload: dict[str, Any]) -> Sent:
    """One request, retried with the same request_id on a connection error, a timeout or a 5xx.

    Like a load balancer, each retry goes to the next instance.
    """
    sent = Sent()
    for attempt in range(1 + RETRIES):
        url = urls[(i + attempt) % len(urls)]
        try:
            response = session.post(url + "/predict", json=payload, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            sent.failures.append(f"{url}: {type(exc).__name__}")
        else:
            sent.status = response.status_code
            if response.status_code < 500:
                sent.body = response.json()
                return sent
            sent.failures.append(f"{url}: HTTP {response.status_code}")
        time.sleep(BACKOFF_S * 2**attempt)
    return sent


def _kill_a_worker_part_way(router: Router, progress: Progress) -> tuple[int, int, int, int]:
    """Once the kill is due, SIGKILL a worker of `router` and wait until gunicorn's replacement is ready.

    Returns the killed pid, the new pid, and the answers counted at the kill and when the
    replacement was ready (traffic that went on around the dead worker).
    """
    assert progress.kill_due.wait(DEADLINE_S), "the traffic never reached the point of the kill"
    before = worker_pids(router)
    at_kill = progress.answered
    victim = sigkill_a_worker(router)
    replacement = wait_replaced(router, before, victim, deadline_s=60.0)
    return victim, replacement, at_kill, progress.answered


def _assert_one_complete_row_per_request(rows: pd.DataFrame, payloads: list[dict[str, Any]], sent: list[Sent],
                                         experiment_id: str) -> None:
    """0 lost, no strangers, and every row says what its request's answer said under the one experiment."""
    ids = [p["request_id"] for p in payloads]
    logged = set(rows["request_id"])
    lost = sorted(set(ids) - logged)
    assert not lost, f"{len(lost)} answered requests have no row: {lost[:5]}"
    assert logged == set(ids) and len(logged) == REQUESTS
    expected = pd.DataFrame({
        "request_id": ids,
        "ticket_id": [p["ticket_id"] for p in payloads],
        "customer_id": [p["customer_id"] for p in payloads],
        "text": [p["text"] for p in payloads],
        "variant": [s.body["variant"] for s in sent],
        "model_alias": [s.body["model_alias"] for s in sent],
        "model_version": [s.body["model_version"] for s in sent],
        "topic": [s.body["topic"] for s in sent],
    }).set_index("request_id")
    columns = list(expected.columns)
    got = rows.set_index("request_id")[columns]
    wrong = got.ne(expected.loc[got.index, columns]).any(axis=1)
    assert not wrong.any(), f"rows that differ from their answer:\n{got[wrong].head()}"
    assert set(rows["experiment_id"]) == {experiment_id}
    assert rows["confidence"].between(0, 1).all() and rows["latency_ms"].gt(0).all()
    assert set(rows["variant"]) == {A, B} and rows["timestamp"].notna().all()


def _assert_duplicates_are_rare_retries_counted_once(rows: pd.DataFrame, payloads: list[dict[str, Any]],
                                                     sent: list[Sent], worker_threads: int) -> None:
    """A duplicate is a request whose row was written by the killed worker and whose retry wrote another."""
    failed_first = {p["request_id"] for p, s in zip(payloads, sent, strict=True) if s.failures}
    twice = set(rows.loc[rows["request_id"].duplicated(), "request_id"])
    assert twice <= failed_first, f"rows written twice for requests that were sent once: {sorted(twice - failed_first)}"
    assert rows["request_id"].value_counts().max() <= 2
    assert len(twice) <= worker_threads, f"{len(twice)} duplicates; one killed worker holds at most {worker_threads}"
    window, counts = new_requests(rows, until=None)
    assert len(window) == REQUESTS and window["request_id"].is_unique
    assert counts["requests_duplicate"] == len(rows) - REQUESTS
