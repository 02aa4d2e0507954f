"""The A/B config every replica serves under: one JSON tag on the registered model, next to its aliases.

Replicas share nothing but the MLflow registry, so that is where the config lives, as ONE
registered-model tag (`ab_config`): a write is a single tag write, so a reader sees the old JSON
or the new one, never a mix of two. `POST /config` on any replica merges its change into the tag
as the registry holds it at that moment; every replica's model-store poll reads the tag in the
same registry call as the aliases and publishes it here, so a change is in effect everywhere within
the reload interval. Requests read the published config from memory: no stat, no lock.

The experiment id names one experiment: a hash of the split, the mode, when they were set and the
versions behind champion and challenger. Every replica derives it from the same registry facts, so
all agree without talking to each other. It salts the arm hash (see `router.assign`) and is logged
on every request row.

When the registry cannot be reached, the last known config stays in effect. It is also cached on
disk (atomic write), so a replica restarted during an outage serves the last split, not the default.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticket_ab.atomic import write_atomic
from ticket_ab.log import get_logger, kv
from ticket_ab.names import MODES, SPLIT
from ticket_ab.registry import RegistryUnavailable

CACHE_FILE = "ab_config.json"  # under the router's state dir: the last config the registry gave
EXPERIMENT_ID_BYTES = 6  # 12 hex characters: ample for the handful of experiments a model sees
_EXPERIMENT_ID = re.compile(rf"[0-9a-f]{{{2 * EXPERIMENT_ID_BYTES}}}")
_STORED = ("ab_split_b", "mode", "updated_at", "updated_by")  # what the tag holds; the id is derived

log = get_logger("router.config")


class ConfigError(ValueError):
    """A config value is unusable; the message names the field and the accepted values."""


# The config lives in the registry: it cannot be read or written exactly when the registry cannot be asked.
ConfigUnavailable = RegistryUnavailable


@dataclass(frozen=True)
class ABConfig:
    """What GET /config shows and every request is served under (frozen: a request sees one config)."""

    ab_split_b: float
    mode: str = SPLIT
    updated_at: str | None = None
    updated_by: str = "default"
    experiment_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of GET /config and of the disk cache."""
        return asdict(self)

    def to_tag(self) -> str:
        """The registry tag: what an admin set. The experiment id is derived, so it is not stored."""
        return json.dumps({name: getattr(self, name) for name in _STORED}, sort_keys=True)


@dataclass(frozen=True)
class Published:
    """What the registry says about the experiment: the config tag and the versions behind the aliases."""

    tag: str | None = None  # None: nobody has set a config yet
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
    return ABConfig(
        ab_split_b=parse_split(data.get("ab_split_b", default.ab_split_b)),
        mode=parse_mode(data.get("mode", default.mode)),
        updated_at=str(updated_at) if updated_at is not None else None,
        updated_by=str(updated_by),
    )


def experiment_id(config: ABConfig, champion: str | None, challenger: str | None) -> str:
    """The same on every replica for the same registry facts; new when the split, mode or a model changes.

    `updated_at` is part of it, so going back to an earlier split starts a new experiment rather
    than silently merging two periods; `updated_by` is not, since who set it changes no arm.
    """
    material = json.dumps([config.ab_split_b, config.mode, config.updated_at, champion, challenger])
    return hashlib.blake2b(material.encode("utf-8"), digest_size=EXPERIMENT_ID_BYTES).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ConfigStore:
    """One worker's copy of the shared config: published by the poll, written through to the registry.

    `read` asks the registry afresh (tag and alias versions) and `write` replaces the tag; both
    raise ConfigUnavailable when the registry cannot be reached.
    """

    def __init__(self, cache: Path, default: ABConfig, read: Callable[[], Published],
                 write: Callable[[str], None]) -> None:
        self.cache = Path(cache)
        self.default = default
        self._read, self._write = read, write
        self._lock = threading.Lock()  # orders polls and writes; requests never take it
        self._writes = 0
        self._bad_tag: str | None = None
        self._config = self._from_cache() or self._derive(default, Published())

    def current(self) -> ABConfig:
        """The config in effect now: one attribute read, so the request path never waits."""
        return self._config

    def mark(self) -> int:
        """Taken before a poll asks the registry, handed back to `follow` (see there)."""
        return self._writes

    def follow(self, published: Published, mark: int | None = None) -> ABConfig:
        """Adopt what a poll read from the registry.

        A poll's answer can be older than a POST this worker served while the poll was loading
        models; `mark` (from before the poll asked) tells, and such an answer is dropped: the next
        poll reads the newer tag.
        """
        with self._lock:
            if mark is not None and mark != self._writes:
                return self._config
            return self._adopt(published)

    def update(self, *, updated_by: str, ab_split_b: float | None = None, mode: str | None = None) -> ABConfig:
        """Merge the given fields into the registry's config and put the result in effect here.

        The merge starts from the tag as the registry holds it now, not from this worker's copy,
        so a change made through another replica is kept. A change that leaves split and mode as
        they are writes nothing: the running experiment (and its arm assignment) continues.
        """
        changes: dict[str, Any] = {}
        if ab_split_b is not None:
            changes["ab_split_b"] = parse_split(ab_split_b)
        if mode is not None:
            changes["mode"] = parse_mode(mode)
        with self._lock:
            published = self._read()
            base = self._decode(published.tag)
            if all(getattr(base, name) == value for name, value in changes.items()):
                return self._adopt(published)
            tag = replace(base, **changes, updated_by=updated_by, updated_at=_now()).to_tag()
            self._write(tag)
            self._writes += 1
            new = self._adopt(replace(published, tag=tag))
        log.info(kv("config_changed", split_b=new.ab_split_b, mode=new.mode, by=updated_by,
                    experiment=new.experiment_id))
        return new

    def _adopt(self, published: Published) -> ABConfig:
        config = self._derive(self._decode(published.tag), published)
        if config != self._config:
            self._config = config
            self._save(config)
            log.info(kv("config_in_effect", split_b=config.ab_split_b, mode=config.mode,
                        experiment=config.experiment_id))
        return config

    def _decode(self, tag: str | None) -> ABConfig:
        """The tag's config; an unusable tag keeps the last good one (logged once per bad value)."""
        if tag is None:
            return self.default
        try:
            return from_dict(json.loads(tag), self.default)
        except ValueError as exc:  # json.JSONDecodeError and ConfigError are both ValueErrors
            if tag != self._bad_tag:
                log.warning(kv("config_tag_unusable", error=exc, keeping=self._config.to_tag()))
                self._bad_tag = tag
            return self._config

    @staticmethod
    def _derive(config: ABConfig, published: Published) -> ABConfig:
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
        cached_id = data.get("experiment_id")
        if isinstance(cached_id, str) and _EXPERIMENT_ID.fullmatch(cached_id):
            return replace(config, experiment_id=cached_id)
        return self._derive(config, Published())

    def _save(self, config: ABConfig) -> None:
        try:
            write_atomic(self.cache, json.dumps(config.to_dict(), indent=2) + "\n")
        except OSError as exc:  # the cache only matters for a restart during an outage
            log.warning(kv("config_cache_write_failed", path=self.cache, error=exc))
