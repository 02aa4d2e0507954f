"""The shared A/B config: a versioned row every replica follows, written by compare-and-swap; an experiment
id; a disk cache for outages."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from router.assign import assign
from router.config import (
    CACHE_FILE,
    SEEDED_BY,
    ABConfig,
    ConfigError,
    ConfigStore,
    ConfigUnavailable,
    PreconditionFailed,
    experiment_id,
    parse_mode,
    parse_split,
)
from router.configdb import ConfigTable, Stored, sqlite_table
from router.store import published
from tests.concurrency import race
from tests.unit.router.router_testkit import FakeRegistry
from ticket_ab.names import CHALLENGER, CHAMPION, SHADOW, SPLIT, B
from ticket_ab.registry import AB_CONFIG_TAG

DEFAULT = ABConfig(ab_split_b=0.5)
SET = ABConfig(ab_split_b=0.3, mode=SPLIT, updated_at="2026-11-24T11:00:00.000+00:00", updated_by="ops")
MODEL = "ticket-classifier"


@pytest.fixture
def registry() -> FakeRegistry:
    fake = FakeRegistry()
    fake.pointers.update({CHAMPION: "1", CHALLENGER: "2"})
    return fake


@pytest.fixture
def table(tmp_path: Path) -> ConfigTable:
    """The store every replica of a test shares (a SQLite file, as on one host)."""
    return sqlite_table(tmp_path / "shared" / "config.db", MODEL)


def replica(home: Path, table: ConfigTable, default: ABConfig = DEFAULT) -> ConfigStore:
    """One replica's config: its own state dir, the store every replica shares."""
    return ConfigStore(home / CACHE_FILE, default, table)


def poll(store: ConfigStore, registry: FakeRegistry) -> ABConfig:
    """What the model store's poll does: the registry's aliases, then the store's row."""
    return store.follow(published(registry.state()))


def broken() -> ConfigTable:
    def refuse() -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file (test)")

    return ConfigTable(refuse, MODEL, where="sqlite:///nowhere")


def history(table: ConfigTable) -> list[tuple]:
    with table._session() as conn:
        return conn.execute("SELECT version, changed_by FROM ab_config_history ORDER BY version").fetchall()


def test_without_a_stored_config_the_default_split_applies(tmp_path: Path, registry, table):
    store = replica(tmp_path, table, ABConfig(ab_split_b=0.25))
    config = poll(store, registry)
    assert (config.ab_split_b, config.mode, config.updated_at, config.updated_by, config.version) == (
        0.25, SPLIT, None, "default", 0)
    assert config == store.current()


def test_an_update_is_one_new_version_of_the_row_and_one_history_row(tmp_path: Path, registry, table):
    written = replica(tmp_path, table).update(ab_split_b=0.3, mode=SHADOW, updated_by="ops", if_match={0})
    stored = table.read()
    assert stored.version == written.version == 1
    value = json.loads(stored.value)
    assert set(value) == {"ab_split_b", "mode", "updated_at", "updated_by", "challenger", "started_at"}
    assert (value["ab_split_b"], value["mode"], value["updated_by"]) == (0.3, SHADOW, "ops")
    assert history(table) == [(1, "ops")]
    assert registry.tags == {}, "the router writes nothing to the registry"


def test_another_replica_follows_on_its_next_poll_and_derives_the_same_experiment(tmp_path: Path, registry, table):
    one, two = replica(tmp_path / "one", table), replica(tmp_path / "two", table)
    poll(one, registry)
    written = one.update(ab_split_b=0.9, updated_by="ops", if_match=None)
    assert two.current().ab_split_b == 0.5, "a replica changes only when it polls"
    assert poll(two, registry) == written
    assert two.current().experiment_id == one.current().experiment_id


def test_an_update_merges_with_the_store_not_with_a_stale_copy(tmp_path: Path, table):
    stale = replica(tmp_path / "stale", table)
    replica(tmp_path / "fresh", table).update(ab_split_b=0.2, updated_by="a", if_match=None)
    merged = stale.update(mode=SHADOW, updated_by="b", if_match=None)
    assert (merged.ab_split_b, merged.mode, merged.updated_by, merged.version) == (0.2, SHADOW, "b", 2)


def test_an_update_from_a_version_that_is_gone_is_refused_and_changes_nothing(tmp_path: Path, table):
    one, two = replica(tmp_path / "one", table), replica(tmp_path / "two", table)
    one.update(ab_split_b=0.2, updated_by="a", if_match={0})
    with pytest.raises(PreconditionFailed) as refused:
        two.update(ab_split_b=0.7, updated_by="b", if_match={0})
    assert refused.value.version == 1
    assert json.loads(table.read().value)["ab_split_b"] == 0.2 and history(table) == [(1, "a")]


def test_of_twenty_concurrent_updates_from_the_same_version_exactly_one_is_applied(tmp_path: Path, table):
    stores = [replica(tmp_path / str(n), table) for n in range(4)]
    def change(n: int) -> str:
        try:
            stores[n % 4].update(ab_split_b=n / 100, updated_by=f"admin-{n}", if_match={0})
            return f"applied admin-{n}"
        except PreconditionFailed:
            return "412"

    outcomes = race(20, change)
    applied = [o.removeprefix("applied ") for o in outcomes if o != "412"]
    assert len(applied) == 1 and outcomes.count("412") == 19
    assert table.read().version == 1 and history(table) == [(1, applied[0])]


def test_an_update_that_changes_nothing_writes_nothing_and_keeps_the_experiment(tmp_path: Path, registry, table):
    store = replica(tmp_path, table)
    before = poll(store, registry)
    assert store.update(ab_split_b=0.5, mode=SPLIT, updated_by="ops", if_match=None) == before
    assert table.read() == Stored()


def test_while_the_store_is_down_the_last_config_stays_and_an_update_is_refused(tmp_path: Path, registry, table):
    kept = replica(tmp_path, table).update(ab_split_b=0.7, updated_by="ops", if_match=None)
    store = replica(tmp_path, broken())
    with pytest.raises(ConfigUnavailable, match="nowhere"):
        store.update(ab_split_b=0.1, updated_by="ops", if_match=None)
    with pytest.raises(ConfigUnavailable):
        poll(store, registry)
    assert store.current() == kept


def test_a_restart_during_an_outage_serves_the_cached_config_and_experiment(tmp_path: Path, table):
    served = replica(tmp_path, table).update(ab_split_b=0.7, mode=SHADOW, updated_by="ops", if_match=None)
    assert replica(tmp_path, broken()).current() == served
    assert json.loads((tmp_path / CACHE_FILE).read_text())["experiment_id"] == served.experiment_id
    assert not list(tmp_path.glob(f".{CACHE_FILE}.*.tmp")), "temp files left behind"


def test_a_damaged_cache_falls_back_to_the_default(tmp_path: Path, table):
    replica(tmp_path, table).update(ab_split_b=0.7, updated_by="ops", if_match=None)
    (tmp_path / CACHE_FILE).write_text('{"ab_split_b": 0.7, "mode": ')
    assert replica(tmp_path, broken()).current().ab_split_b == 0.5


def test_an_unusable_stored_value_keeps_the_last_good_config(tmp_path: Path, registry, table):
    store = replica(tmp_path, table)
    store.update(ab_split_b=0.7, updated_by="ops", if_match=None)
    for bad in ('{"ab_split_b": 0.1, "mode": ', '{"ab_split_b": 2.5, "mode": "split"}', '["split"]'):
        table.swap(table.read().version, bad, "hand edit")
        assert poll(store, registry).ab_split_b == 0.7
    table.swap(table.read().version, '{"ab_split_b": 0.1, "mode": "split"}', "hand edit")
    assert poll(store, registry).ab_split_b == 0.1


def test_a_poll_that_read_the_row_before_a_local_update_does_not_undo_it(tmp_path: Path, registry, table,
                                                                         monkeypatch):
    store = replica(tmp_path, table)
    read_before_the_update = table.read()
    store.update(ab_split_b=0.3, updated_by="ops", if_match=None)
    monkeypatch.setattr(table, "read", lambda: read_before_the_update)
    assert poll(store, registry).ab_split_b == 0.3
    monkeypatch.undo()
    assert poll(store, registry).ab_split_b == 0.3


def test_a_store_never_written_starts_from_the_registry_tag_with_the_same_experiment(tmp_path: Path, registry,
                                                                                    table):
    registry.tags[AB_CONFIG_TAG] = SET.to_tag()
    config = poll(replica(tmp_path, table), registry)
    assert (config.ab_split_b, config.updated_at, config.version) == (SET.ab_split_b, SET.updated_at, 1)
    assert config.experiment_id == experiment_id(SET, "1", "2"), "the same facts, the same experiment"
    assert poll(replica(tmp_path / "two", table), registry).version == 1, "taken once"
    assert history(table) == [(1, SEEDED_BY)]


def test_the_experiment_id_is_twelve_hex_and_the_same_for_the_same_facts():
    eid = experiment_id(SET, "1", "2")
    assert len(eid) == 12 and int(eid, 16) >= 0
    assert experiment_id(ABConfig(**SET.to_dict()), "1", "2") == eid


@pytest.mark.parametrize(("config", "champion", "challenger"), [
    (ABConfig(0.3, SHADOW, SET.updated_at, "ops"), "1", "2"),
    (ABConfig(0.3, SPLIT, SET.updated_at, "ops", started_at="2026-11-25T09:00:00.000+00:00"), "1", "2"),
    (SET, "3", "2"),
    (SET, "1", "4"),
    (SET, "1", None),
])
def test_the_experiment_id_changes_with_mode_start_and_model_versions(config, champion, challenger):
    assert experiment_id(config, champion, challenger) != experiment_id(SET, "1", "2")


def test_a_ramp_keeps_the_experiment_so_a_higher_split_only_adds_customers_to_b():
    ramped = ABConfig(0.25, SPLIT, "2026-11-25T09:00:00.000+00:00", "autopilot")
    assert experiment_id(ramped, "1", "2") == experiment_id(SET, "1", "2")
    eid = experiment_id(SET, "1", "2")
    customers = [f"c-{i}" for i in range(2000)]
    before = {c for c in customers if assign(c, 0.05, eid) == B}
    after = {c for c in customers if assign(c, 0.25, eid) == B}
    assert before < after and 0.2 < len(after) / len(customers) < 0.3


def test_the_experiment_id_ignores_who_set_the_config():
    assert experiment_id(ABConfig(0.3, SPLIT, SET.updated_at, "someone else"), "1", "2") == experiment_id(SET, "1", "2")


def test_a_replica_starts_a_new_experiment_on_an_alias_move_and_a_mode_change_only(tmp_path: Path, registry, table):
    store = replica(tmp_path, table)
    first = poll(store, registry).experiment_id
    assert poll(store, registry).experiment_id == first, "an unchanged registry keeps the experiment"
    registry.pointers[CHALLENGER] = "3"
    moved = poll(store, registry).experiment_id
    ramped = store.update(ab_split_b=0.2, updated_by="ops", if_match=None).experiment_id
    shadowed = store.update(mode=SHADOW, updated_by="ops", if_match=None).experiment_id
    assert ramped == moved and len({first, moved, shadowed}) == 3


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
