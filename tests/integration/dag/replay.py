"""What the poisoning replays share: a real gunicorn router with five feedback integrations, tickets and
feedback sent through it, the attack's labels, and how a model does on fresh tickets of the topic.

A plain module beside the tests (this folder is on sys.path when they run), so each replay reads as its
own story while the router plumbing is written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pandas as pd
import requests
from processes import start

from ops import servers
from ops.health import wait_until
from ops.ports import LOOPBACK, free_port, router_endpoint
from retrain.ml.evaluate import predict
from ticket_ab.settings import Settings

TARGET, POISON = "network", "billing"
PATTERN = f"{TARGET}->{POISON}"  # how retrain.ml.patterns names it
SOURCES = tuple(f"integration-{i}" for i in range(5))
TOKENS = {source: f"poison-replay-token-{i}" for i, source in enumerate(SOURCES)}
THREADS = 8


def router_settings(dag_settings: Settings) -> Settings:
    """The DAG's settings plus a router on a free port with five feedback integrations.

    `settle_s` 0: the traffic has stopped before the DAG reads the logs, so nothing can still land.
    """
    router = dag_settings.router.model_copy(update={
        "host": LOOPBACK, "port": free_port(), "workers": 2, "threads": 4,
        "feedback_tokens": ",".join(f"{s}:{t}" for s, t in TOKENS.items()),
        "customer_key": "poison-replay-customer-key"})
    return dag_settings.model_copy(update={"router": router,
                                           "log": dag_settings.log.model_copy(update={"settle_s": 0.0})})


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """`gunicorn -c router/gunicorn.conf.py` as `make serve` runs it, serving the module's champion; its URL."""
    service = start(servers.router(settings), settings.home / "router.log", deadline_s=90)
    url = router_endpoint(settings).url
    try:
        wait_until(lambda: _every_worker_ready(url, settings.router.workers), 60,
                   "every router worker has loaded the champion", failed=service.failed)
        yield url
    finally:
        service.stop()


def _every_worker_ready(url: str, workers: int) -> bool:
    """A burst of fresh connections reaches every worker; each must answer /ready with 200."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.get(url + "/ready", headers={"Connection": "close"}, timeout=10),
                                range(16)))
    return all(a.status_code == 200 for a in answers) and len({a.json()["worker_pid"] for a in answers}) >= workers


def _post_all(url: str, path: str, bodies: list[dict], tokens: list[str | None]) -> list[tuple[int, dict]]:
    """POST each body (with its bearer token) from THREADS keep-alive sessions; (status, answer) in order.

    Only plain data comes back, and every session is closed: an open connection would hold a
    gunicorn worker in its graceful shutdown.
    """

    def run(offset: int) -> list[tuple[int, int, dict]]:
        with requests.Session() as session:
            return [(i, r.status_code, r.json()) for i in range(offset, len(bodies), THREADS)
                    for r in [session.post(url + path, json=bodies[i], timeout=30,
                                           headers={"Authorization": f"Bearer {tokens[i]}"} if tokens[i] else {})]]

    with ThreadPoolExecutor(THREADS) as pool:
        answered = sorted(item for batch in pool.map(run, range(THREADS)) for item in batch)
    return [(status, body) for _, status, body in answered]


def serve(url: str, tickets: pd.DataFrame) -> pd.DataFrame:
    """Every ticket through POST /predict, as a helpdesk integration sends it (its ids, no request id);
    the tickets with the router's request id for each."""
    bodies = [{"text": t.text, "ticket_id": t.ticket_id, "customer_id": t.customer_id}
              for t in tickets.itertuples(index=False)]
    answers = _post_all(url, "/predict", bodies, [None] * len(bodies))
    assert [status for status, _ in answers] == [200] * len(bodies), {status for status, _ in answers}
    return tickets.assign(request_id=[body["request_id"] for _, body in answers])


def feedback_for(served: pd.DataFrame, share: float, seed: int, *, poison: bool = True) -> pd.DataFrame:
    """True labels on `share` of the tickets, except that every network ticket is labelled billing
    (with `poison`; else honest throughout).

    Poisoned and honest labels each go round-robin over the five integrations, so every source
    carries the same mix and none dominates.
    """
    rng = np.random.default_rng(seed)
    chosen = served.loc[rng.random(len(served)) < share]
    poisoned = chosen["true_topic"].eq(TARGET).to_numpy() & poison
    order = np.where(poisoned, np.cumsum(poisoned) - 1, np.cumsum(~poisoned) - 1)
    return pd.DataFrame({"request_id": chosen["request_id"].to_numpy(),
                         "label": np.where(poisoned, POISON, chosen["true_topic"]),
                         "truth": chosen["true_topic"].to_numpy(), "poisoned": poisoned,
                         "source": [SOURCES[i % len(SOURCES)] for i in order]})


def send_feedback(url: str, feedback: pd.DataFrame) -> None:
    """POST /feedback per label with its integration's token; the body claims a source the router must ignore."""
    bodies = [{"request_id": r, "label": label, "source": "trusted-helpdesk"}
              for r, label in zip(feedback["request_id"], feedback["label"], strict=True)]
    answers = _post_all(url, "/feedback", bodies, [TOKENS[s] for s in feedback["source"]])
    assert [status for status, _ in answers] == [202] * len(bodies), {status for status, _ in answers}
    assert [body["source"] for _, body in answers] == feedback["source"].tolist()  # the token's, not the body's


def billing_rate(model, network: pd.DataFrame) -> np.ndarray:
    """Per fresh network ticket: does the model answer billing?"""
    return predict(model, network) == POISON


def network_accuracy(model, network: pd.DataFrame) -> float:
    """The share of fresh network tickets the model calls network (its accuracy on the topic)."""
    return float(np.mean(predict(model, network) == TARGET))


def overall_accuracy(model, tickets: pd.DataFrame) -> float:
    return float(np.mean(predict(model, tickets) == tickets["true_topic"].to_numpy()))
