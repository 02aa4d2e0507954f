"""The A/B config shared by every gunicorn worker: a JSON file under TICKET_AB_HOME/router/.

Workers share nothing in memory, so the file is the source of truth. Writers replace it atomically
(temp file, fsync, os.replace) under an exclusive lock, so a reader sees the old or the new config,
never half of one, and two concurrent POSTs cannot lose an update. Readers stat the file at most
every CHECK_INTERVAL_S and re-read it only when its inode, mtime or size changed, which keeps the
hot path to one cheap stat and puts a change in effect on every worker well within a second.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrain.contracts.atomic import write_atomic
from retrain.contracts.log import get_logger, kv
from retrain.contracts.names import MODES, SPLIT

# How stale a worker's view may be; 4 checks per second keep a change well inside the 1 s promise.
CHECK_INTERVAL_S = 0.25

log = get_logger("router.config")


class ConfigError(ValueError):
    """A config value is unusable; the message names the field and the accepted values."""


@dataclass(frozen=True)
class ABConfig:
    """What GET /config shows and every request is served under (frozen: a request sees one config)."""

    ab_split_b: float
    mode: str = SPLIT
    updated_at: str | None = None
    updated_by: str = "default"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the file and of GET /config."""
        return asdict(self)


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
    """Validate a decoded config file; absent keys keep `default`'s values."""
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


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class ConfigStore:
    """One worker's view of the shared config file, refreshed lazily on read."""

    def __init__(self, path: Path, default: ABConfig, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self.path = Path(path)
        self.default = default
        self._interval = check_interval_s
        self._config = default
        self._signature: tuple[int, int, int] | None = None
        self._checked = -math.inf
        self._reload = threading.Lock()
        self.current()

    def current(self) -> ABConfig:
        """The config in effect now; at most one stat per CHECK_INTERVAL_S per worker."""
        if time.monotonic() - self._checked >= self._interval and self._reload.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._reload.release()
        return self._config

    def update(self, *, updated_by: str, ab_split_b: float | None = None, mode: str | None = None) -> ABConfig:
        """Merge the given fields into the on-disk config and publish it to every worker."""
        with self._reload, _file_lock(self.path.with_name(self.path.name + ".lock")):
            self._refresh()
            changes: dict[str, Any] = {
                "updated_by": updated_by,
                "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
            if ab_split_b is not None:
                changes["ab_split_b"] = parse_split(ab_split_b)
            if mode is not None:
                changes["mode"] = parse_mode(mode)
            new = replace(self._config, **changes)
            write_atomic(self.path, json.dumps(new.to_dict(), indent=2) + "\n")
            self._config, self._signature, self._checked = new, _signature(self.path), time.monotonic()
        log.info(kv("config_changed", split_b=new.ab_split_b, mode=new.mode, by=updated_by))
        return new

    def _refresh(self) -> None:
        self._checked = time.monotonic()
        signature = _signature(self.path)
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            self._config = self.default
            return
        try:
            self._config = from_dict(json.loads(self.path.read_text(encoding="utf-8")), self.default)
        except (OSError, ValueError) as exc:
            log.warning(kv("config_unreadable", path=self.path, error=exc, keeping=self._config.to_dict()))


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive flock on a side file: serialises read-modify-write across worker processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
