"""Two router replicas (separate gunicorn masters and state dirs) over one MLflow registry: one experiment.

A POST /config to either is in effect on every worker of both within reload_s + 1 s, both derive the
same experiment id, and a customer gets the same arm from every worker of every replica. Config
changes are compare-and-swap on the store both replicas share: of 20 concurrent POSTs with the same
If-Match exactly one is applied, the others answer 412, and every worker of both serves the winner.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.router.router_harness import (
    ADMIN_TOKEN,
    move,
    register,
    router_settings,
    running_routers,
    set_config,
)
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab import registry
from ticket_ab.names import A, B
from ticket_ab.requestlog import read_requests

NAME = "router-replicas"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, mlflow_server):
    homes = [tmp_path_factory.mktemp(f"replica-{n}") for n in (1, 2)]
    settings = [router_settings(home, mlflow_server.uri, NAME, reload_s=0.5) for home in homes]
    assert settings[0].model_name == settings[1].model_name
    register(settings[0], fitted_pipeline(seed=0), "champion")
    register(settings[0], fitted_pipeline(seed=1, per_topic=20), "challenger")
    register(settings[0], fitted_pipeline(seed=2, per_topic=25))
    with running_routers(settings) as running:
        yield running


def test_a_config_posted_to_one_replica_is_in_effect_on_every_worker_of_both_within_reload_plus_one_s(replicas):
    one, two = replicas
    set_config(one, two, ab_split_b=0.5, mode="split")
    posted = two.post("/config", {"ab_split_b": 0.25}, token=ADMIN_TOKEN, headers={"If-Match": "*"})
    assert posted.status_code == 200, posted.text
    time.sleep(max(r.settings.router.reload_s for r in replicas) + 1.0)

    def in_effect(body: dict) -> None:
        assert body["config"] == posted.json(), f"worker {body['worker_pid']} still serves {body['config']}"

    for router in replicas:
        assert len(router.each_worker(check=in_effect)) == router.settings.router.workers
    assert registry.ab_config(registry.connect(one.settings.tracking_uri), one.settings.model_name) is None, (
        "the router writes nothing to the registry")


def test_a_customer_gets_the_same_arm_from_every_replica_and_rows_record_the_experiment(replicas):
    one, two = replicas
    config = set_config(one, two, ab_split_b=0.5, mode="split")
    arms: dict[str, set[str]] = {}
    served: dict[int, set[str]] = {}
    for i in range(40):
        for n, router in enumerate(replicas):
            for _ in range(2):
                body = router.post("/predict", {"text": "vpn drops", "customer_id": f"customer-{i}"}).json()
                arms.setdefault(f"customer-{i}", set()).add(body["variant"])
                served.setdefault(n, set()).add(body["request_id"])
    assert all(len(arm) == 1 for arm in arms.values()), arms
    assert set().union(*arms.values()) == {A, B}
    for n, router in enumerate(replicas):
        rows = read_requests(router.settings.logs_dir).rows
        assert set(rows.loc[rows["request_id"].isin(served[n]), "experiment_id"]) == {config["experiment_id"]}


def test_an_alias_move_starts_a_new_experiment_on_every_replica(replicas):
    one, two = replicas
    before = set_config(one, two, ab_split_b=0.5, mode="split")["experiment_id"]
    move(one.settings, "challenger", "3")

    def moved(body: dict) -> bool:
        return (body["challenger"] or {}).get("version") == "3" and body["config"]["experiment_id"] != before

    for router in replicas:
        router.wait_all_workers(moved, router.settings.router.reload_s + 10.0, "challenger v3, new experiment")
    ids = {body["config"]["experiment_id"] for router in replicas for body in router.each_worker().values()}
    assert len(ids) == 1


def test_of_twenty_concurrent_config_changes_from_one_etag_exactly_one_applies_and_both_replicas_serve_it(replicas):
    one, _ = replicas
    etag = one.get("/config").headers["ETag"]

    def change(i: int) -> tuple[int, dict, str]:
        posted = replicas[i % 2].post("/config", {"ab_split_b": round(0.05 + i * 0.01, 2), "updated_by": f"admin-{i}"},
                                      token=ADMIN_TOKEN, headers={"If-Match": etag})
        return posted.status_code, posted.json(), posted.headers.get("ETag", "")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(change, range(20)))
    statuses = [status for status, _, _ in answers]
    assert statuses.count(200) == 1 and statuses.count(412) == 19, statuses
    winner = next(body for status, body, _ in answers if status == 200)
    assert winner["version"] == int(etag.strip('"')) + 1
    assert {tag for _, _, tag in answers} == {f'"{winner["version"]}"'}, "every 412 names the winner's ETag"
    for router in replicas:
        router.wait_all_workers(lambda body: body["config"] == winner, router.settings.router.reload_s + 3.0,
                                f"the applied change of {winner['updated_by']}")
