"""ModelStore over a fake registry that hands out real MLflow model directories (no server needed).

The HTTP side (aliases and downloads from a real MLflow server) is covered by the integration tests;
these pin the store's own rules: cache layout, hot swap, outages, bad versions, concurrent workers,
the A/B config that rides on the same poll, and that only versions whose files match the digest
recorded at registration are ever unpickled.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pandas as pd
import pytest
from prometheus_client import REGISTRY

from router import store as store_module
from router.cache import MANIFEST
from router.models import FROM_CACHE, FROM_REGISTRY, MISMATCH, UNRECORDED
from router.store import ModelStore
from tests.unit.router.router_testkit import Exploding, FakeRegistry, fitted_pipeline
from ticket_ab import registry as registry_adapter
from ticket_ab.names import CHALLENGER, CHAMPION
from ticket_ab.registry import ARTIFACT_DIGEST_TAG


@pytest.fixture(scope="module")
def pipelines() -> dict[str, Any]:
    first = fitted_pipeline(seed=0)
    return {"1": first, "2": fitted_pipeline(seed=1, per_topic=20), "3": fitted_pipeline(seed=2),
            "4": Exploding(tuple(first.classes_))}


@pytest.fixture
def registry(pipelines) -> FakeRegistry:
    fake = FakeRegistry(pipelines)
    fake.pointers.update({CHAMPION: "1", CHALLENGER: "2"})
    return fake


@pytest.fixture
def settings(make_settings):
    return make_settings(router={"reload_s": 0.1})


def started(settings, registry: FakeRegistry) -> ModelStore:
    store = ModelStore(settings, registry)
    store.start(poll=False)
    return store


def versions(store: ModelStore) -> tuple[str | None, str | None]:
    models = store.snapshot()
    return (models.champion.version if models.champion else None,
            models.challenger.version if models.challenger else None)


def test_store_loads_both_aliases_and_caches_them_with_a_manifest(settings, registry):
    store = started(settings, registry)
    assert versions(store) == ("1", "2")
    assert store.status()["source"] == FROM_REGISTRY
    for alias, version in ((CHAMPION, "1"), (CHALLENGER, "2")):
        assert (settings.router_dir / "cache" / alias / version / "MLmodel").exists()
        manifest = json.loads((settings.router_dir / "cache" / alias / MANIFEST).read_text())
        assert (manifest["version"], manifest["model_name"]) == (version, settings.model_name)
    assert store.snapshot().champion.pipeline.predict(pd.DataFrame({"text": ["vpn drops"]}))[0] == "network"


def test_alias_move_hot_swaps_while_the_old_snapshot_keeps_working(settings, registry):
    store = started(settings, registry)
    in_flight = store.snapshot()
    registry.pointers[CHAMPION] = "3"
    store.refresh()
    assert versions(store) == ("3", "2")
    assert in_flight.champion.version == "1"
    assert in_flight.champion.pipeline.predict_proba(pd.DataFrame({"text": ["printer jam"]})).shape == (1, 8)


def test_unchanged_aliases_are_not_downloaded_or_reloaded_again(settings, registry):
    store = started(settings, registry)
    champion = store.snapshot().champion
    store.refresh()
    store.refresh()
    assert registry.downloads == ["1", "2"]
    assert store.snapshot().champion is champion


def test_removed_challenger_alias_sends_everything_back_to_the_champion(settings, registry):
    store = started(settings, registry)
    registry.pointers[CHALLENGER] = None
    store.refresh()
    assert versions(store) == ("1", None)
    assert not (settings.router_dir / "cache" / CHALLENGER / MANIFEST).exists()


def test_missing_champion_alias_keeps_the_loaded_champion(settings, registry):
    store = started(settings, registry)
    registry.pointers[CHAMPION] = None
    store.refresh()
    assert versions(store)[0] == "1"


def test_registry_outage_keeps_serving_and_is_reported(settings, registry):
    store = started(settings, registry)
    registry.down = True
    store.refresh()
    assert versions(store) == ("1", "2")
    status = store.status()
    assert status["registry"]["reachable"] is False
    assert "down" in status["registry"]["error"]


def test_a_store_started_during_an_outage_serves_the_cached_models_and_says_so(settings, registry):
    started(settings, registry)
    registry.down = True
    restarted = started(settings, registry)
    assert versions(restarted) == ("1", "2")
    assert restarted.status()["source"] == FROM_CACHE
    assert registry.downloads == ["1", "2"]
    registry.down = False
    restarted.refresh()
    assert restarted.status()["source"] == FROM_REGISTRY
    assert registry.downloads == ["1", "2"]


def test_without_registry_or_cache_the_store_is_empty_and_does_not_raise(settings, registry):
    registry.down = True
    store = started(settings, registry)
    assert versions(store) == (None, None)
    assert store.status()["registry"]["reachable"] is False


def test_registry_without_champion_leaves_the_store_empty(settings, registry):
    registry.pointers.update({CHAMPION: None, CHALLENGER: None})
    assert versions(started(settings, registry)) == (None, None)


def test_a_new_version_that_cannot_predict_is_rejected_and_the_old_one_kept(settings, registry):
    store = started(settings, registry)
    registry.pointers[CHAMPION] = "4"
    store.refresh()
    assert versions(store)[0] == "1"
    assert "champion v4" in store.status()["last_error"]


def test_the_cache_of_another_model_name_is_never_served(settings, make_settings, registry):
    started(settings, registry)
    registry.down = True
    other = make_settings(home=settings.home)
    assert versions(started(other, registry)) == (None, None)


def test_a_reused_version_number_from_another_run_is_downloaded_again(settings, registry):
    started(settings, registry)
    registry.runs["1"] = "run-from-a-recreated-registry"
    store = started(settings, registry)
    assert registry.downloads == ["1", "2", "1"]
    assert store.snapshot().champion.run_id == "run-from-a-recreated-registry"


def test_a_damaged_cache_entry_is_downloaded_again(settings, registry):
    started(settings, registry)
    (settings.router_dir / "cache" / CHAMPION / "1" / "model.pkl").write_bytes(b"not a pickle")
    store = started(settings, registry)
    assert versions(store) == ("1", "2")
    assert registry.downloads == ["1", "2", "1"]


def test_workers_starting_together_install_each_version_once_and_leave_no_temp_dirs(settings, registry):
    stores = [ModelStore(settings, registry) for _ in range(4)]
    threads = [threading.Thread(target=s.start, kwargs={"poll": False}) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [versions(s) for s in stores] == [("1", "2")] * 4
    for alias, version in ((CHAMPION, "1"), (CHALLENGER, "2")):
        assert sorted(p.name for p in (settings.router_dir / "cache" / alias).iterdir()) == [version, MANIFEST]


def test_old_versions_are_pruned_but_the_previous_one_is_kept_for_rollback(settings, registry):
    store = started(settings, registry)
    registry.pointers[CHAMPION] = "3"
    store.refresh()
    registry.pointers[CHAMPION] = "2"
    store.refresh()
    assert sorted(p.name for p in (settings.router_dir / "cache" / CHAMPION).iterdir() if p.is_dir()) == ["2", "3"]


def test_the_poll_thread_picks_up_an_alias_move(settings, registry):
    store = ModelStore(settings, registry)
    store.start()
    try:
        registry.pointers[CHAMPION] = "3"
        deadline = time.monotonic() + 10
        while versions(store)[0] != "3":
            assert time.monotonic() < deadline, "the poll thread did not swap the champion"
            time.sleep(0.05)
    finally:
        store.stop()


def test_model_version_gauge_follows_the_loaded_versions(settings, registry):
    store = started(settings, registry)
    registry.pointers[CHALLENGER] = None
    store.refresh()
    assert REGISTRY.get_sample_value("ticket_ab_model_version", {"alias": CHAMPION}) == 1
    assert REGISTRY.get_sample_value("ticket_ab_model_version", {"alias": CHALLENGER}) == 0


def test_one_poll_asks_the_registry_once_for_aliases_and_config(settings, registry):
    store = started(settings, registry)
    calls = registry.calls
    store.refresh()
    assert registry.calls - calls == 1


def test_a_config_set_through_one_replica_is_in_effect_on_another_within_its_reload_interval(
        settings, make_settings, tmp_path, registry):
    other = make_settings(home=tmp_path / "other-replica", model_name=settings.model_name,
                          router={"reload_s": 0.1, "config_store": f"sqlite:///{settings.router_dir / 'config.db'}"})
    one, two = started(settings, registry), ModelStore(other, registry)
    two.start()
    try:
        written = one.config.update(ab_split_b=0.2, updated_by="ops")
        deadline = time.monotonic() + other.router.reload_s + 1.0
        while two.config.current() != written:
            assert time.monotonic() < deadline, "the other replica did not follow within reload_s + 1 s"
            time.sleep(0.02)
    finally:
        two.stop()


def test_a_restart_while_the_registry_is_down_serves_the_cached_models_and_config(settings, registry):
    served = started(settings, registry).config.update(ab_split_b=0.9, mode="shadow", updated_by="ops")
    registry.down = True
    restarted = started(settings, registry)
    assert versions(restarted) == ("1", "2")
    assert restarted.config.current() == served


def test_an_alias_move_starts_a_new_experiment_and_a_quiet_poll_does_not(settings, registry):
    store = started(settings, registry)
    first = store.config.current().experiment_id
    store.refresh()
    assert store.config.current().experiment_id == first
    registry.pointers[CHALLENGER] = "3"
    store.refresh()
    assert store.config.current().experiment_id != first


def _refusals(alias: str, version: str, reason: str) -> float:
    return REGISTRY.get_sample_value("ticket_ab_model_refusals_total",
                                     {"alias": alias, "version": version, "reason": reason}) or 0.0


def test_a_version_swapped_after_registration_is_never_unpickled_and_the_champion_stays(settings, registry,
                                                                                        monkeypatch):
    store = started(settings, registry)
    registry.tamper("3")
    unpickled = []
    monkeypatch.setattr(registry_adapter, "load_local", lambda path: unpickled.append(path))
    before = _refusals(CHAMPION, "3", MISMATCH)
    registry.pointers[CHAMPION] = "3"
    store.refresh()
    assert versions(store) == ("1", "2") and unpickled == []
    assert "champion v3 refused" in store.status()["last_error"]
    assert "recorded at registration" in store.status()["last_error"]
    assert _refusals(CHAMPION, "3", MISMATCH) == before + 1


def test_a_version_without_a_recorded_digest_is_refused_before_it_is_downloaded(settings, registry):
    store = started(settings, registry)
    registry.digests["3"] = None
    before = _refusals(CHALLENGER, "3", UNRECORDED)
    registry.pointers[CHALLENGER] = "3"
    store.refresh()
    assert versions(store) == ("1", "2")
    assert registry.downloads == ["1", "2"]
    assert f"challenger v3 refused: it carries no {ARTIFACT_DIGEST_TAG} tag" in store.status()["last_error"]
    assert _refusals(CHALLENGER, "3", UNRECORDED) == before + 1


def test_a_store_with_nothing_loaded_serves_no_unrecorded_champion(settings, registry):
    registry.digests["1"] = None
    store = started(settings, registry)
    assert versions(store) == (None, "2")
    assert "champion v1 refused" in store.status()["last_error"]


def test_a_refused_version_is_named_on_every_poll_but_fetched_again_only_after_the_retry_interval(
        settings, registry, monkeypatch):
    store = started(settings, registry)
    registry.tamper("3")
    registry.pointers[CHALLENGER] = "3"
    store.refresh()
    before = _refusals(CHALLENGER, "3", MISMATCH)
    store.refresh()
    assert registry.downloads == ["1", "2", "3"]
    assert "challenger v3 refused" in store.status()["last_error"]
    assert _refusals(CHALLENGER, "3", MISMATCH) == before
    monkeypatch.setattr(store_module, "REFUSAL_RETRY_S", 0.0)
    store.refresh()
    assert registry.downloads[-1] == "3" and len(registry.downloads) > 3


def test_a_cached_copy_altered_on_disk_is_fetched_again_and_checked(settings, registry):
    started(settings, registry)
    cached = settings.router_dir / "cache" / CHAMPION / "1" / "model.pkl"
    cached.write_bytes((settings.router_dir / "cache" / CHALLENGER / "2" / "model.pkl").read_bytes())
    store = started(settings, registry)
    assert versions(store) == ("1", "2")
    assert registry.downloads == ["1", "2", "1"]
    assert store.snapshot().champion.digest == registry.digests["1"]


def test_a_start_without_the_registry_checks_the_cache_against_the_digest_it_was_verified_with(settings, registry):
    started(settings, registry)
    registry.down = True
    cached = settings.router_dir / "cache" / CHAMPION / "1" / "model.pkl"
    cached.write_bytes((settings.router_dir / "cache" / CHALLENGER / "2" / "model.pkl").read_bytes())
    restarted = started(settings, registry)
    assert versions(restarted) == (None, "2")
    assert "champion v1 refused" in restarted.status()["last_error"]
