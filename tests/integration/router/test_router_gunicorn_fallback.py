"""A challenger that raises at predict time: the champion answers and the log row records the fallback."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from router.assign import B
from tests.integration.router.router_harness import register, router_settings, start_router, stop_router
from tests.unit.router.router_testkit import fitted_pipeline
from ticket_ab.requestlog import read_requests

MARKER = "EXPLODE"


def exploding_on(marker: str) -> Pipeline:
    """A real fitted pipeline whose first step raises on tickets containing `marker`.

    The check is a closure, so cloudpickle stores it by value and the router can unpickle it
    without importing this test module; every other ticket (and the warm-up) predicts normally.
    """

    def guard(frame):
        if frame["text"].str.contains(marker, regex=False).any():
            raise RuntimeError(f"challenger cannot score tickets containing {marker}")
        return frame

    fitted = fitted_pipeline(seed=1, per_topic=20)
    return Pipeline([("guard", FunctionTransformer(guard)), *fitted.steps])


@pytest.fixture(scope="module")
def router(module_home, mlflow_server):
    settings = router_settings(module_home, mlflow_server.uri, "router-fallback", split_b=1.0)
    register(settings, fitted_pipeline(seed=0), "champion")
    register(settings, exploding_on(MARKER), "challenger")
    running = start_router(settings)
    yield running
    stop_router(running)


def fallbacks(router) -> float:
    text = router.get("/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "ticket_ab_fallbacks_total")


def test_challenger_that_raises_serves_the_champion_and_logs_fallback_rows(router):
    before = fallbacks(router)
    exploding = [router.post("/predict", {"text": f"vpn drops {MARKER} {i}"}) for i in range(20)]
    normal = [router.post("/predict", {"text": f"vpn drops {i}"}) for i in range(20)]
    assert [r.status_code for r in exploding + normal] == [200] * 40
    assert {(r.json()["variant"], r.json()["model_alias"], r.json()["model_version"]) for r in exploding} == {
        (B, "champion", "1")}
    assert {(r.json()["variant"], r.json()["model_alias"], r.json()["model_version"]) for r in normal} == {
        (B, "challenger", "2")}
    rows = read_requests(router.settings.logs_dir).rows.set_index("request_id")
    assert set(rows.loc[[r.json()["request_id"] for r in exploding], "fallback"]) == {"challenger_error:RuntimeError"}
    assert set(rows.loc[[r.json()["request_id"] for r in normal], "fallback"]) == {""}
    assert fallbacks(router) - before == 20
    assert "challenger_failed" in router.log_path.read_text()
