"""The A/B config every replica serves under: one versioned row in a transactional store.

Replicas share the config through `router.configdb` (PostgreSQL on the stack, a SQLite file on one
host): `POST /config` on any replica merges its change into the row as the store holds it and writes
it back by compare-and-swap (`UPDATE ... WHERE version = ?`), so of two concurrent changes made from
the same version exactly one is applied and the other is refused (412 with its If-Match), never lost.
The row's version is the config's ETag. Every replica's model-store poll reads the row and publishes
it here, so a change is in effect everywhere within the reload interval. Requests read the published
config from memory: no stat, no lock.

The experiment id names one experiment: a hash of the mode, when that mode was started and the
versions behind champion and challenger. Every replica derives it from the same facts (the stored
config and the registry's aliases), so all agree without talking to each other. It salts the arm
hash (see `router.assign`) and is logged on every request row. The split is NOT part of it: a ramp
(5% -> 25% -> 50%) stays one experiment whose buckets are monotone, so raising the split only adds
customers to B. A store that was never written takes the registry's old `ab_config` tag once, as
its first version (the router only reads the registry: it holds READ on the model, and the store's
history table is the audit trail).

A split is set for one challenger version (`challenger` in the stored config). A newly registered
challenger therefore never inherits the split its predecessor reached: until a change names it, it
is served at the rollout policy's start (TICKET_AB_ROLLOUT_START: the first ramp step, or shadow
mode), and the experiment DAG ramps it from there. With the start `configured`, the stored split
applies to whichever challenger is registered (the behaviour before the rollout policy).

When the store cannot be reached, the last known config stays in effect. It is also cached on
disk (atomic write), so a replica restarted during an outage serves the last split, not the default.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.configdb import ConfigTable, ConfigUnavailable, Conflict, Stored
from ticket_ab.atomic import write_atomic
from ticket_ab.log import get_logger, kv
from ticket_ab.names import MODES, ROLLOUT_START, SHADOW, SPLIT

CACHE_FILE = "ab_config.json"  # under the router's state dir: the last config the store gave
EXPERIMENT_ID_BYTES = 6  # 12 hex characters: ample for the handful of experiments a model sees
_EXPERIMENT_ID = re.compile(rf"[0-9a-f]{{{2 * EXPERIMENT_ID_BYTES}}}")
_STORED = ("ab_split_b", "mode", "updated_at", "updated_by", "challenger", "started_at")  # the id is derived
SEEDED_BY = "registry tag ab_config"  # who wrote a store's first version taken from the old registry tag
ANY_ATTEMPTS = 5  # `If-Match: *` merges into whatever is stored: tries this often when others keep writing
CONFIGURED = "configured"  # the rollout start that keeps the stored split for every challenger

__all__ = ["ABConfig", "ConfigError", "ConfigStore", "ConfigUnavailable", "PreconditionFailed", "Published", "Start",
           "experiment_id", "from_dict", "parse_mode", "parse_split"]

log = get_logger("router.config")


class ConfigError(ValueError):
    """A config value is unusable; the message names the field and the accepted values."""


class PreconditionFailed(Exception):
    """The stored config is no longer the version the caller saw (its If-Match); `version` is the current one."""

    def __init__(self, version: int) -> None:
        super().__init__(f"the A/B config is now at version {version}")
        self.version = version


@dataclass(frozen=True)
class ABConfig:
    """What GET /config shows and every request is served under (frozen: a request sees one config)."""

    ab_split_b: float
    mode: str = SPLIT
    updated_at: str | None = None
    updated_by: str = "default"
    challenger: str | None = None  # the challenger version this split and mode were set for (None: any)
    started_at: str | None = None  # when this mode was started for this challenger: part of the experiment id
    experiment_id: str = ""
    version: int = 0  # the stored row's version (0: never set): the ETag of GET /config

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of GET /config and of the disk cache."""
        return asdict(self)

    def to_tag(self) -> str:
        """The stored JSON (as the registry tag held it): what an admin set. The id and version are not in it."""
        return json.dumps({name: getattr(self, name) for name in _STORED}, sort_keys=True)


@dataclass(frozen=True)
class Start:
    """How a challenger no config change has named yet is served: `step` (the first ramp step), `shadow`, or
    `configured` (the stored split, whichever challenger it was set for)."""

    kind: str = CONFIGURED
    split: float = 0.0


@dataclass(frozen=True)
class Published:
    """What the registry says about the experiment: the versions behind the aliases, and its old config tag."""

    tag: str | None = None  # the registry's `ab_config` tag, if any: a never-written store starts from it
    champion: str | None = None
    challenger: str | None = None


def parse_split(value: object) -> float:
    """A share of traffic for B: a JSON number in [0, 1] (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"'ab_split_b' must be a number between 0 and 1, got {type(value).__name__}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"'ab_split_b' must be between 0 and 1, got {value}")
    return float(value)


def parse_mode(value: object) -> str:
    """`split` serves B to a share of traffic; `shadow` serves A to all and scores B alongside."""
    if value not in MODES:
        raise ConfigError(f"'mode' must be one of {', '.join(repr(m) for m in MODES)}, got {value!r}")
    return str(value)


def from_dict(data: object, default: ABConfig) -> ABConfig:
    """Validate a decoded tag or cache file; absent keys keep `default`'s values."""
    if not isinstance(data, dict):
        raise ConfigError("the config must be a JSON object")
    updated_at = data.get("updated_at", default.updated_at)
    updated_by = data.get("updated_by", default.updated_by)
    started_at = data["started_at"] if "started_at" in data else updated_at  # a row from before the field
    challenger = data.get("challenger", default.challenger)
    return ABConfig(
        ab_split_b=parse_split(data.get("ab_split_b", default.ab_split_b)),
        mode=parse_mode(data.get("mode", default.mode)),
        updated_at=_text(updated_at),
        updated_by=str(updated_by),
        challenger=_text(challenger),
        started_at=_text(started_at),
    )


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def experiment_id(config: ABConfig, champion: str | None, challenger: str | None) -> str:
    """The same on every replica for the same registry facts; new when the mode or a model changes.

    The split is not part of it, so a ramp keeps every customer's bucket and only adds customers to B;
    `started_at` (set when the mode changes) is, so leaving shadow mode starts a fresh experiment.
    """
    material = json.dumps([config.mode, config.started_at, champion, challenger])
    return hashlib.blake2b(material.encode("utf-8"), digest_size=EXPERIMENT_ID_BYTES).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ConfigStore:
    """One worker's copy of the shared config: published by the poll, written through to the store by
    compare-and-swap. `table` raises ConfigUnavailable when the store cannot be reached."""

    def __init__(self, cache: Path, default: ABConfig, table: ConfigTable, start: Start = Start()) -> None:
        self.cache = Path(cache)
        self.default = default
        self.start = start
        self._table = table
        self._lock = threading.Lock()  # orders polls and writes in this worker; requests never take it
        self._bad_tag: str | None = None
        self._published = Published()
        self._written = 0  # the version this worker last wrote: a poll that read an older row is stale
        self._config = self._from_cache() or self._derive(default, Published())

    def current(self) -> ABConfig:
        """The config in effect now: one attribute read, so the request path never waits."""
        return self._config

    def follow(self, published: Published | None = None) -> ABConfig:
        """Read the store and adopt its row with the aliases a poll saw (None: the last ones known).

        A row older than the one in effect (read before a write this worker just made) is dropped:
        versions only grow. A store that was never written takes the registry's old config tag once.
        Raises ConfigUnavailable when the store cannot be read (the config in effect stays).
        """
        with self._lock:
            if published is not None:
                self._published = published
            stored = self._table.read()
            if stored.version == 0 and self._published.tag is not None:
                stored = self._seed(self._published.tag)
            if stored.version < self._written:
                return self._config
            return self._adopt(stored)

    def update(self, *, updated_by: str, if_match: Collection[int] | None = None, ab_split_b: float | None = None,
               mode: str | None = None, challenger: str | None = None) -> ABConfig:
        """Merge the given fields into the stored config, if it is at one of the versions `if_match` (None: any).

        The change is for `challenger` (None: the version the registry names now); it starts from what that
        challenger is served under, so a new challenger's ramp starts from the policy's start, not from its
        predecessor's split. The merge reads the row as the store holds it now, not this worker's copy, so a
        change made through another replica is kept. The write is a compare-and-swap: PreconditionFailed
        when the row is not (or no longer) at those versions; with `if_match` None, a lost race merges again.
        A change that leaves split and mode as they are writes nothing: the experiment continues.
        """
        changes: dict[str, Any] = {}
        if ab_split_b is not None:
            changes["ab_split_b"] = parse_split(ab_split_b)
        if mode is not None:
            changes["mode"] = parse_mode(mode)
        for _ in range(1 if if_match is not None else ANY_ATTEMPTS):
            stored = self._table.read()
            if if_match is not None and stored.version not in if_match:
                raise PreconditionFailed(stored.version)
            target = challenger if challenger is not None else self._published.challenger
            base = self._served(self._decode(stored.value), target)
            same_challenger = self.start.kind == CONFIGURED or base.challenger == target
            if same_challenger and all(getattr(base, name) == value for name, value in changes.items()):
                with self._lock:
                    return self._adopt(stored)
            now = _now()
            started = now if changes.get("mode", base.mode) != base.mode else base.started_at
            value = replace(base, **changes, challenger=target, started_at=started, updated_by=updated_by,
                            updated_at=now).to_tag()
            try:
                version = self._table.swap(stored.version, value, updated_by)
            except Conflict:
                if if_match is not None:
                    raise PreconditionFailed(self._table.read().version) from None
                continue
            with self._lock:
                self._written = max(self._written, version)
                new = self._adopt(Stored(version, value))
            log.info(kv("config_changed", split_b=new.ab_split_b, mode=new.mode, by=updated_by, version=version,
                        experiment=new.experiment_id))
            return new
        raise ConfigUnavailable(f"the A/B config changed {ANY_ATTEMPTS} times while this change was merged; "
                                "send it again")

    def _seed(self, tag: str) -> Stored:
        """Take the registry's old config tag as the store's first version (once: a lost race reads the winner)."""
        try:
            from_dict(json.loads(tag), self.default)
            return Stored(self._table.swap(0, tag, SEEDED_BY), tag)
        except Conflict:
            return self._table.read()
        except ValueError:  # an unusable tag is not worth keeping: the default applies until a POST
            return Stored()

    def _adopt(self, stored: Stored) -> ABConfig:
        config = self._derive(replace(self._decode(stored.value), version=stored.version), self._published)
        if config != self._config:
            self._config = config
            self._save(config)
            log.info(kv("config_in_effect", split_b=config.ab_split_b, mode=config.mode, version=config.version,
                        experiment=config.experiment_id))
        return config

    def _decode(self, tag: str | None) -> ABConfig:
        """The stored config; an unusable value keeps the last good one (logged once per bad value)."""
        if tag is None:
            return self.default
        try:
            return from_dict(json.loads(tag), self.default)
        except ValueError as exc:  # json.JSONDecodeError and ConfigError are both ValueErrors
            if tag != self._bad_tag:
                log.warning(kv("config_value_unusable", error=exc, keeping=self._config.to_tag()))
                self._bad_tag = tag
            return self._config

    def _served(self, config: ABConfig, challenger: str | None) -> ABConfig:
        """The config `challenger` is served under: the stored one when it was set for that challenger (or the
        start is `configured`), else the rollout policy's start."""
        if self.start.kind == CONFIGURED or challenger is None or config.challenger == challenger:
            return config
        return replace(config, ab_split_b=self.start.split, mode=SHADOW if self.start.kind == SHADOW else SPLIT,
                       challenger=challenger, started_at=None, updated_at=None, updated_by=ROLLOUT_START)

    def _derive(self, config: ABConfig, published: Published) -> ABConfig:
        config = self._served(config, published.challenger)
        return replace(config, experiment_id=experiment_id(config, published.champion, published.challenger))

    def _from_cache(self) -> ABConfig | None:
        """The config a previous run last served, so a restart during an outage keeps the split."""
        try:
            data = json.loads(self.cache.read_text(encoding="utf-8"))
            config = from_dict(data, self.default)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning(kv("config_cache_unreadable", path=self.cache, error=exc))
            return None
        version = data.get("version")
        config = replace(config, version=version if isinstance(version, int) and version >= 0 else 0)
        cached_id = data.get("experiment_id")
        if isinstance(cached_id, str) and _EXPERIMENT_ID.fullmatch(cached_id):
            return replace(config, experiment_id=cached_id)
        return self._derive(config, Published())

    def _save(self, config: ABConfig) -> None:
        try:
            write_atomic(self.cache, json.dumps(config.to_dict(), indent=2) + "\n")
        except OSError as exc:  # the cache only matters for a restart during an outage
            log.warning(kv("config_cache_write_failed", path=self.cache, error=exc))
