"""Only what the pipeline registered is unpickled: a real gunicorn router over a real MLflow server.

A version's files are swapped in MLflow's artifact store after registration (the pickle replaced by
one whose unpickling runs code), or a version is registered without our registration call (no
digest): every worker refuses it before unpickling, names it in /ready and in its metric, and keeps
serving the champion.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.router.router_harness import move, register, router_settings, start_router, stop_router
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab import registry
from ticket_ab.names import CHALLENGER, CHAMPION
from ticket_ab.registry import ARTIFACT_DIGEST_TAG


class Planted:
    """What a swapped-in model file can do: unpickling it runs code (here it only creates `marker`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.marker),)


@pytest.fixture(scope="module")
def router(module_home, mlflow_server):
    settings = router_settings(module_home, mlflow_server.uri, "router-digest", split_b=1.0)
    register(settings, fitted_pipeline(seed=0), CHAMPION)
    running = start_router(settings)
    yield running
    stop_router(running)


def stored_pickle(artifacts: Path, settings, version: str) -> Path:
    """The version's model.pkl in the MLflow server's artifact store on disk."""
    source = registry.connect(settings.tracking_uri).get_model_version(settings.model_name, version).source
    found = list(artifacts.glob(f"*/models/{source.removeprefix('models:/')}/artifacts/model.pkl"))
    assert len(found) == 1, found
    return found[0]


def refusals(router, version: str) -> float:
    text = router.get("/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "ticket_ab_model_refusals_total" and s.labels.get("version") == version)


def assert_refused_everywhere(router, version: str, why: str) -> None:
    """Every worker names the refusal, serves no challenger, and the champion answers every request."""
    router.wait_all_workers(lambda body: f"challenger v{version} refused: {why}" in (body["last_error"] or ""),
                            20.0, f"v{version} refused")
    for body in router.each_worker().values():
        assert body["challenger"] is None and body["champion"]["version"] == "1"
    assert refusals(router, version) >= router.settings.router.workers
    answers = [router.post("/predict", {"text": f"vpn drops {i}"}) for i in range(10)]
    assert {(r.status_code, r.json()["model_alias"], r.json()["model_version"]) for r in answers} == {
        (200, CHAMPION, "1")}


def test_a_version_whose_pickle_was_swapped_after_registration_is_never_unpickled(router, mlflow_server, tmp_path):
    settings, marker = router.settings, tmp_path / "the-swapped-pickle-ran"
    version = register(settings, fitted_pipeline(seed=2))
    stored_pickle(mlflow_server.directory / "artifacts", settings, version).write_bytes(pickle.dumps(Planted(marker)))
    move(settings, CHALLENGER, version)
    assert_refused_everywhere(router, version, "its files hash to")
    assert not marker.exists(), "a worker unpickled the swapped file"
    move(settings, CHALLENGER, None)


def test_a_version_registered_without_a_digest_is_refused(router):
    settings = router.settings
    client = registry.connect(settings.tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, CHAMPION)
    copy = client.create_model_version(settings.model_name, f"models:/{settings.model_name}/{champion.version}")
    assert ARTIFACT_DIGEST_TAG not in copy.tags
    move(settings, CHALLENGER, copy.version)
    assert_refused_everywhere(router, copy.version, f"it carries no {ARTIFACT_DIGEST_TAG} tag")
    move(settings, CHALLENGER, None)


def test_a_registered_version_is_served_once_its_files_match(router):
    settings = router.settings
    version = register(settings, fitted_pipeline(seed=1, per_topic=20))
    move(settings, CHALLENGER, version)
    router.wait_all_workers(lambda body: (body["challenger"] or {}).get("version") == version, 20.0,
                            f"challenger v{version}")
    answers = [router.post("/predict", {"text": f"vpn drops {i}"}) for i in range(10)]
    assert {(r.json()["model_alias"], r.json()["model_version"]) for r in answers} == {(CHALLENGER, version)}
