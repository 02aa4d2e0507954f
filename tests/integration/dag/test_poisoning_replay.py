"""Targeted feedback poisoning, replayed end to end: tickets through the real gunicorn router, feedback
through its POST /feedback with one bearer token per integration, then `airflow dags test` on the
router's own logs against a real MLflow registry.

The attack: every `network` ticket that gets feedback is labelled `billing` (10-20% of all feedback),
spread round-robin over five integrations, so neither the source guard nor the label guard of the
window can see it. What must hold: no version that learned network -> billing holds an alias, the
champion alias never moves, the run report names the pattern, and the poisoned labels train nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import requests
from processes import start
from scipy.stats import binomtest

from load_test.simulate.generator import generate
from ops import servers
from ops.health import wait_until
from ops.ports import LOOPBACK, free_port, router_endpoint
from retrain.adapters import labelstore
from retrain.ml.evaluate import predict
from ticket_ab import registry
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.settings import Settings

pytestmark = pytest.mark.slow
TARGET, POISON = "network", "billing"
PATTERN = f"{TARGET}->{POISON}"  # how retrain.ml.patterns names it
SOURCES = tuple(f"integration-{i}" for i in range(5))
TOKENS = {source: f"poison-replay-token-{i}" for i, source in enumerate(SOURCES)}
N_TICKETS, FEEDBACK_SHARE, SEED = 1600, 0.5, 71
THREADS = 8
LOGICAL_DATE = "2026-05-01"
# A learned pattern shows as challenger-only billing answers on network tickets that are too many to be chance.
LEARNED_P = 0.01


@pytest.fixture
def replay_settings(dag_settings: Settings) -> Settings:
    """The DAG's settings plus a router on a free port with five feedback integrations.

    `settle_s` 0: the traffic has stopped before the DAG reads the logs, so nothing can still land.
    """
    router = dag_settings.router.model_copy(update={
        "host": LOOPBACK, "port": free_port(), "workers": 2, "threads": 4,
        "feedback_tokens": ",".join(f"{s}:{t}" for s, t in TOKENS.items()),
        "customer_key": "poison-replay-customer-key"})
    return dag_settings.model_copy(update={"router": router,
                                           "log": dag_settings.log.model_copy(update={"settle_s": 0.0})})


@pytest.fixture
def router_url(replay_settings: Settings) -> Iterator[str]:
    """`gunicorn -c router/gunicorn.conf.py` as `make serve` runs it, serving the module's champion."""
    service = start(servers.router(replay_settings), replay_settings.home / "router.log", deadline_s=90)
    url = router_endpoint(replay_settings).url
    try:
        wait_until(lambda: _every_worker_ready(url, replay_settings.router.workers), 60,
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


def poisoned_feedback(served: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """True labels on `share` of the tickets, except that every network ticket is labelled billing.

    Poisoned and honest labels each go round-robin over the five integrations, so every source
    carries the same mix and none dominates.
    """
    rng = np.random.default_rng(seed)
    chosen = served.loc[rng.random(len(served)) < share]
    poisoned = chosen["true_topic"].eq(TARGET).to_numpy()
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


def learned_the_pattern(candidate: np.ndarray, champion: np.ndarray) -> tuple[bool, float]:
    """Whether the candidate sends more network tickets to billing than the champion beyond chance.

    Paired on the same tickets (exact McNemar): among the tickets only one model sends to billing,
    the candidate's count is binomial(n, 1/2) when it learned nothing. Returns (learned, p).
    """
    only_candidate = int((candidate & ~champion).sum())
    only_champion = int((champion & ~candidate).sum())
    if only_candidate + only_champion == 0:
        return False, 1.0
    p = binomtest(only_candidate, only_candidate + only_champion, 0.5, alternative="greater").pvalue
    return bool(p < LEARNED_P), float(p)


def _champion_moves(client, name: str, version: str) -> list[str]:
    """The champion alias events recorded on `version` (registry.move_alias tags every move)."""
    tags = client.get_model_version(name, version).tags
    return sorted(v for k, v in tags.items() if k.startswith("alias_event.") and '"alias": "champion"' in v)


def _run_dir(settings: Settings) -> str:
    (directory,) = [p for p in (settings.reports_dir / "runs").iterdir() if p.is_dir()]
    return str(directory)


def test_poisoning_replayed_through_router_and_dag_reaches_no_alias_and_the_report_names_it(
        replay_settings, router_url, run_dag, versions):
    settings = replay_settings
    client = registry.connect(settings.tracking_uri)
    champion = registry.version_for(client, settings.model_name, registry.CHAMPION).version
    champion_moves = _champion_moves(client, settings.model_name, champion)
    before = {v.version for v in versions()}

    tickets = generate("new_product", N_TICKETS, SEED, start="2026-04-01T00:00:00Z")
    feedback = poisoned_feedback(serve(router_url, tickets), FEEDBACK_SHARE, SEED)
    send_feedback(router_url, feedback)

    logged = read_feedback(settings.logs_dir).rows
    assert len(logged) == len(feedback) and set(logged["source"]) == set(SOURCES)
    shares = logged["source"].value_counts(normalize=True)
    assert shares.max() <= settings.feedback.max_source_share  # no integration dominates
    poisoned_share = feedback["poisoned"].mean()
    assert 0.10 <= poisoned_share <= 0.20
    print(f"\nfeedback {len(feedback)} rows, poisoned share {poisoned_share:.3f}, sources {shares.round(3).to_dict()}")

    run = run_dag(settings, LOGICAL_DATE)

    assert run.returncode == 0, run.log[-3000:]
    assert "feedback refused" not in run.report  # the guards of the window did not see it: the pattern must
    assert f"suspicious label pattern quarantined: {PATTERN}" in run.report  # the summary line operators grep
    (named,) = [line for line in run.report.splitlines() if line.startswith(f"- {PATTERN}: ")]
    print(run.report.splitlines()[2], named, sep="\n")
    assert "Suspicious feedback label patterns" in run.report
    assert registry.version_for(client, settings.model_name, registry.CHAMPION).version == champion
    assert _champion_moves(client, settings.model_name, champion) == champion_moves  # not even moved and back
    _assert_poison_trained_nothing(settings, feedback)
    _assert_no_version_that_learned_it_holds_an_alias(settings, client, champion,
                                                     [v.version for v in versions() if v.version not in before])


def _assert_poison_trained_nothing(settings: Settings, feedback: pd.DataFrame) -> None:
    """The poison is quarantined under the pattern's name, so it neither trains nor gates: a poisoned
    label may only get through where the champion was already sure of billing (it teaches nothing new)."""
    directory = _run_dir(settings)
    window = pd.read_parquet(f"{directory}/window.parquet")
    assert window["customer_id"].notna().all()  # the customer (the gate's cluster) survives the router
    assert window["label_source"].dropna().isin(SOURCES).all()
    store = labelstore.load(labelstore.path_for(settings.data_dir))
    quarantined = store.loc[store["status"] == labelstore.QUARANTINED]
    assert len(quarantined) and quarantined["pattern"].eq(PATTERN).all()
    poisoned = set(feedback.loc[feedback["poisoned"], "request_id"])
    served = read_requests(settings.logs_dir).rows.set_index("request_id")
    escaped = served.loc[sorted(poisoned - set(quarantined["request_id"]))]
    sure = escaped["topic"].eq(POISON) & (escaped["confidence"] >= settings.feedback.pattern_confidence)
    assert sure.all(), escaped[["topic", "confidence"]]
    train = pd.read_parquet(f"{directory}/relabelled.parquet")
    trained = train.loc[train["request_id"].isin(poisoned) & train["topic"].eq(POISON)]
    print(f"poisoned labels {len(poisoned)}, quarantined {len(quarantined)} (poisoned among them "
          f"{len(poisoned) - len(escaped)}), poisoned labels trained on {len(trained)}")


def _assert_no_version_that_learned_it_holds_an_alias(settings: Settings, client, champion: str,
                                                     new: list[str]) -> None:
    """Each new version is compared with the champion on fresh network tickets of the drifted month."""
    fresh = generate("new_product", 3000, SEED + 1, start="2026-04-20T00:00:00Z")
    network = fresh.loc[fresh["true_topic"] == TARGET]
    champion_billing = billing_rate(_load(settings, champion), network)
    print(f"champion v{champion}: {champion_billing.mean():.3f} of {len(network)} fresh network tickets -> billing")
    for version in new:
        aliases = list(client.get_model_version(settings.model_name, version).aliases)
        candidate = billing_rate(_load(settings, version), network)
        learned, p = learned_the_pattern(candidate, champion_billing)
        print(f"new v{version} aliases {aliases}: {candidate.mean():.3f} -> billing (learned: {learned}, "
              f"one-sided exact McNemar p={p:.3g})")
        assert not (aliases and learned), f"v{version} learned {PATTERN} and holds {aliases}"
        assert registry.CHAMPION not in aliases


def _load(settings: Settings, version: str):
    return registry.load_version(settings.model_name, version)
