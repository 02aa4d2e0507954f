"""The shared A/B config: one registry tag that every replica follows, an experiment id, a disk cache for outages."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest

from router.config import (
    CACHE_FILE,
    ABConfig,
    ConfigError,
    ConfigStore,
    ConfigUnavailable,
    experiment_id,
    parse_mode,
    parse_split,
)
from router.store import published
from tests.unit.router.router_testkit import FakeRegistry
from ticket_ab.names import CHALLENGER, CHAMPION, SHADOW, SPLIT
from ticket_ab.registry import AB_CONFIG_TAG

DEFAULT = ABConfig(ab_split_b=0.5)
SET = ABConfig(ab_split_b=0.3, mode=SPLIT, updated_at="2026-11-24T11:00:00.000+00:00", updated_by="ops")


@pytest.fixture
def registry() -> FakeRegistry:
    fake = FakeRegistry()
    fake.pointers.update({CHAMPION: "1", CHALLENGER: "2"})
    return fake


def replica(home: Path, registry: FakeRegistry, default: ABConfig = DEFAULT) -> ConfigStore:
    """One replica's config: its own state dir, the registry every replica shares."""
    return ConfigStore(home / CACHE_FILE, default, read=lambda: published(registry.state()),
                       write=registry.write_config)


def poll(store: ConfigStore, registry: FakeRegistry) -> ABConfig:
    """What the model store's poll does with the registry's answer."""
    return store.follow(published(registry.state()))


def test_without_a_tag_the_default_split_applies(tmp_path: Path, registry):
    store = replica(tmp_path, registry, ABConfig(ab_split_b=0.25))
    config = poll(store, registry)
    assert (config.ab_split_b, config.mode, config.updated_at, config.updated_by) == (0.25, SPLIT, None, "default")
    assert config == store.current()


def test_an_update_is_one_json_tag_on_the_registered_model(tmp_path: Path, registry):
    replica(tmp_path, registry).update(ab_split_b=0.3, mode=SHADOW, updated_by="ops")
    assert list(registry.tags) == [AB_CONFIG_TAG]
    tag = json.loads(registry.tags[AB_CONFIG_TAG])
    assert set(tag) == {"ab_split_b", "mode", "updated_at", "updated_by"}
    assert (tag["ab_split_b"], tag["mode"], tag["updated_by"]) == (0.3, SHADOW, "ops")


def test_another_replica_follows_on_its_next_poll_and_derives_the_same_experiment(tmp_path: Path, registry):
    one, two = replica(tmp_path / "one", registry), replica(tmp_path / "two", registry)
    written = one.update(ab_split_b=0.9, updated_by="ops")
    assert two.current().ab_split_b == 0.5, "a replica changes only when it polls"
    assert poll(two, registry) == written
    assert two.current().experiment_id == one.current().experiment_id


def test_an_update_merges_with_the_registry_not_with_a_stale_copy(tmp_path: Path, registry):
    stale = replica(tmp_path / "stale", registry)
    replica(tmp_path / "fresh", registry).update(ab_split_b=0.2, updated_by="a")
    merged = stale.update(mode=SHADOW, updated_by="b")
    assert (merged.ab_split_b, merged.mode, merged.updated_by) == (0.2, SHADOW, "b")


def test_an_update_that_changes_nothing_writes_nothing_and_keeps_the_experiment(tmp_path: Path, registry):
    store = replica(tmp_path, registry)
    before = poll(store, registry)
    assert store.update(ab_split_b=0.5, mode=SPLIT, updated_by="ops") == before
    assert registry.tags == {}


def test_while_the_registry_is_down_the_last_config_stays_and_an_update_is_refused(tmp_path: Path, registry):
    store = replica(tmp_path, registry)
    kept = store.update(ab_split_b=0.7, updated_by="ops")
    registry.down = True
    with pytest.raises(ConfigUnavailable, match="down"):
        store.update(ab_split_b=0.1, updated_by="ops")
    assert store.current() == kept


def test_a_restart_during_an_outage_serves_the_cached_config_and_experiment(tmp_path: Path, registry):
    served = replica(tmp_path, registry).update(ab_split_b=0.7, mode=SHADOW, updated_by="ops")
    registry.down = True
    assert replica(tmp_path, registry).current() == served
    assert json.loads((tmp_path / CACHE_FILE).read_text())["experiment_id"] == served.experiment_id
    assert not list(tmp_path.glob(f".{CACHE_FILE}.*.tmp")), "temp files left behind"


def test_a_damaged_cache_falls_back_to_the_default(tmp_path: Path, registry):
    replica(tmp_path, registry).update(ab_split_b=0.7, updated_by="ops")
    (tmp_path / CACHE_FILE).write_text('{"ab_split_b": 0.7, "mode": ')
    assert replica(tmp_path, registry).current().ab_split_b == 0.5


def test_an_unusable_tag_keeps_the_last_good_config(tmp_path: Path, registry):
    store = replica(tmp_path, registry)
    store.update(ab_split_b=0.7, updated_by="ops")
    for bad in ('{"ab_split_b": 0.1, "mode": ', '{"ab_split_b": 2.5, "mode": "split"}', '["split"]'):
        registry.tags[AB_CONFIG_TAG] = bad
        assert poll(store, registry).ab_split_b == 0.7
    registry.tags[AB_CONFIG_TAG] = '{"ab_split_b": 0.1, "mode": "split"}'
    assert poll(store, registry).ab_split_b == 0.1


def test_a_poll_answer_older_than_a_local_update_does_not_undo_it(tmp_path: Path, registry):
    store = replica(tmp_path, registry)
    mark = store.mark()
    answer_before_the_update = published(registry.state())
    store.update(ab_split_b=0.3, updated_by="ops")
    assert store.follow(answer_before_the_update, mark).ab_split_b == 0.3
    assert poll(store, registry).ab_split_b == 0.3


def test_concurrent_updates_through_several_replicas_leave_one_valid_config(tmp_path: Path, registry):
    stores = [replica(tmp_path / str(n), registry) for n in range(4)]

    def hammer(store: ConfigStore, n: int) -> None:
        for i in range(50):
            store.update(ab_split_b=(n + i % 2) / 10, updated_by=f"thread-{n}-{i}")

    threads = [threading.Thread(target=hammer, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = poll(replica(tmp_path / "reader", registry), registry)
    n, i = (int(part) for part in final.updated_by.split("-")[1:])
    assert final.ab_split_b == (n + i % 2) / 10


def test_the_experiment_id_is_twelve_hex_and_the_same_for_the_same_facts():
    eid = experiment_id(SET, "1", "2")
    assert len(eid) == 12 and int(eid, 16) >= 0
    assert experiment_id(ABConfig(**SET.to_dict()), "1", "2") == eid


@pytest.mark.parametrize(("config", "champion", "challenger"), [
    (ABConfig(0.4, SPLIT, SET.updated_at, "ops"), "1", "2"),
    (ABConfig(0.3, SHADOW, SET.updated_at, "ops"), "1", "2"),
    (ABConfig(0.3, SPLIT, "2026-11-25T09:00:00.000+00:00", "ops"), "1", "2"),
    (SET, "3", "2"),
    (SET, "1", "4"),
    (SET, "1", None),
])
def test_the_experiment_id_changes_with_split_mode_set_time_and_model_versions(config, champion, challenger):
    assert experiment_id(config, champion, challenger) != experiment_id(SET, "1", "2")


def test_the_experiment_id_ignores_who_set_the_config():
    assert experiment_id(ABConfig(0.3, SPLIT, SET.updated_at, "someone else"), "1", "2") == experiment_id(SET, "1", "2")


def test_a_replica_starts_a_new_experiment_on_an_alias_move_and_on_an_update_only(tmp_path: Path, registry):
    store = replica(tmp_path, registry)
    first = poll(store, registry).experiment_id
    assert poll(store, registry).experiment_id == first, "an unchanged registry keeps the experiment"
    registry.pointers[CHALLENGER] = "3"
    moved = poll(store, registry).experiment_id
    updated = store.update(ab_split_b=0.2, updated_by="ops").experiment_id
    assert len({first, moved, updated}) == 3


@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf, True, "0.3", None, [0.3]])
def test_parse_split_rejects_values_outside_zero_one_and_non_numbers(value: object):
    with pytest.raises(ConfigError, match="ab_split_b"):
        parse_split(value)


@pytest.mark.parametrize("value", [0, 1, 0.0, 0.3, 1.0])
def test_parse_split_accepts_numbers_in_zero_one(value: float):
    assert parse_split(value) == float(value)


def test_parse_mode_names_the_accepted_modes():
    with pytest.raises(ConfigError, match="'split', 'shadow'"):
        parse_mode("canary")
