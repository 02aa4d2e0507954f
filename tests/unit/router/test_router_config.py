"""The shared A/B config file: defaults, persistence, atomic replacement, cross-worker visibility."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from retrain.contracts.names import SHADOW, SPLIT
from retrain.local import launch as services
from router.config import ABConfig, ConfigError, ConfigStore, parse_mode, parse_split

DEFAULT = ABConfig(ab_split_b=0.5)


def test_without_a_file_the_default_split_applies(tmp_path: Path):
    config = ConfigStore(tmp_path / "config.json", ABConfig(ab_split_b=0.25)).current()
    assert (config.ab_split_b, config.mode, config.updated_by) == (0.25, SPLIT, "default")


def test_update_is_persisted_and_survives_a_restart(tmp_path: Path):
    path = tmp_path / "router" / "config.json"
    ConfigStore(path, DEFAULT).update(ab_split_b=0.3, mode=SHADOW, updated_by="ops")
    on_disk = json.loads(path.read_text())
    assert set(on_disk) == {"ab_split_b", "mode", "updated_at", "updated_by"}
    restarted = ConfigStore(path, DEFAULT).current()
    assert (restarted.ab_split_b, restarted.mode, restarted.updated_by) == (0.3, SHADOW, "ops")
    assert restarted.updated_at is not None


def test_another_worker_sees_a_change_within_one_second(tmp_path: Path):
    path = tmp_path / "config.json"
    worker_1, worker_2 = ConfigStore(path, DEFAULT), ConfigStore(path, DEFAULT)
    assert worker_2.current().ab_split_b == 0.5
    changed = time.monotonic()
    worker_1.update(ab_split_b=0.9, updated_by="test")
    while worker_2.current().ab_split_b != 0.9:
        assert time.monotonic() - changed < 1.0, "worker 2 still serves the old split after 1 s"
        time.sleep(0.01)


def test_update_merges_with_what_is_on_disk_not_with_a_stale_view(tmp_path: Path):
    path = tmp_path / "config.json"
    stale = ConfigStore(path, DEFAULT, check_interval_s=3600)
    ConfigStore(path, DEFAULT).update(ab_split_b=0.2, updated_by="a")
    merged = stale.update(mode=SHADOW, updated_by="b")
    assert (merged.ab_split_b, merged.mode) == (0.2, SHADOW)


def test_readers_never_see_a_partial_file_while_processes_rewrite_it(tmp_path: Path):
    path = tmp_path / "config.json"
    ConfigStore(path, DEFAULT).update(ab_split_b=0.5, updated_by="seed")
    writer = (
        "import sys\nfrom pathlib import Path\nfrom router.config import ABConfig, ConfigStore\n"
        "store = ConfigStore(Path(sys.argv[1]), ABConfig(0.5))\n"
        "for i in range(60):\n"
        "    store.update(ab_split_b=(i % 11) / 10, mode=('split', 'shadow')[i % 2], updated_by=sys.argv[2] * 300)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), str(n)], env=services.python_env())
             for n in range(3)]
    bad, reads = [], 0
    while any(p.poll() is None for p in procs):
        try:
            data = json.loads(path.read_text())
            parse_split(data["ab_split_b"]), parse_mode(data["mode"])
            reads += 1
        except (ValueError, KeyError, ConfigError) as exc:
            bad.append(repr(exc))
    assert [p.wait() for p in procs] == [0, 0, 0]
    assert bad == []
    assert reads > 0
    assert not list(tmp_path.glob(".config.json.*.tmp")), "temp files left behind"


def test_concurrent_thread_updates_leave_one_valid_config(tmp_path: Path):
    path = tmp_path / "config.json"
    stores = [ConfigStore(path, DEFAULT) for _ in range(4)]

    def hammer(store: ConfigStore, n: int) -> None:
        for i in range(50):
            store.update(ab_split_b=n / 10, updated_by=f"thread-{n}-{i}")

    threads = [threading.Thread(target=hammer, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = ConfigStore(path, DEFAULT).current()
    assert final.ab_split_b == int(final.updated_by.split("-")[1]) / 10


def test_an_unreadable_file_keeps_the_last_good_config(tmp_path: Path):
    path = tmp_path / "config.json"
    store = ConfigStore(path, DEFAULT, check_interval_s=0)
    store.update(ab_split_b=0.7, updated_by="ops")
    path.write_text('{"ab_split_b": 0.1, "mode": ')
    assert store.current().ab_split_b == 0.7
    path.write_text('{"ab_split_b": 2.5, "mode": "split"}')
    assert store.current().ab_split_b == 0.7
    path.write_text('{"ab_split_b": 0.1, "mode": "split"}')
    assert store.current().ab_split_b == 0.1


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
