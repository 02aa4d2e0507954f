"""The router's disk cache of model versions: what lets a worker start while MLflow is down.

Every version is downloaded once into `<root>/<alias>/<version>/`, installed by an atomic rename
(so concurrent workers never see half a model) and stamped with what it is; a per-alias manifest
names the version the alias served last and the digest its files were verified against, so a
start without the registry verifies them again (router.models.verify) before unpickling. Several
workers share one cache directory, so every operation here tolerates another worker doing the same
thing at the same moment.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticket_ab.atomic import write_atomic

STAMP = "router-cache.json"  # inside each cached version directory: what it is
MANIFEST = "manifest.json"  # per alias directory: which cached version is current
STALE_DOWNLOAD_S = 3600.0  # a hidden download dir this old belongs to a crashed worker
INSTALL_ATTEMPTS = 3


class CacheError(RuntimeError):
    """A downloaded version could not be put in place in the cache."""


def utc_now() -> str:
    """UTC ISO 8601 to the second: the timestamps of stamps, manifests and /ready."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ModelCache:
    """One model name's cached versions per alias, shared by all workers of a router."""

    def __init__(self, root: Path, model_name: str) -> None:
        self.root = root
        self.model_name = model_name

    def path(self, alias: str, version: str) -> Path:
        """Where `version` of `alias` lives (whether or not it is there yet)."""
        return self.root / alias / version

    def holds(self, alias: str, version: str, run_id: str) -> bool:
        """A cached directory is usable only if it is this model's version (and run, when known)."""
        stamp = _read_json(self.path(alias, version) / STAMP) or {}
        same_model = stamp.get("model_name") == self.model_name and stamp.get("version") == version
        return same_model and (not run_id or stamp.get("run_id") == run_id)

    def current(self, alias: str) -> tuple[str, str, str | None] | None:
        """(version, run id, digest) the alias served last, from its manifest; None if there is none for this model."""
        manifest = _read_json(self.root / alias / MANIFEST)
        if not manifest or manifest.get("model_name") != self.model_name:
            return None
        return str(manifest.get("version")), str(manifest.get("run_id", "")), manifest.get("digest")

    def set_current(self, alias: str, version: str, run_id: str, digest: str | None = None) -> None:
        """Record that the alias now serves `version` (verified against `digest`), for the next start without
        a registry."""
        write_atomic(self.root / alias / MANIFEST, json.dumps(
            {"model_name": self.model_name, "alias": alias, "version": version, "run_id": run_id,
             "digest": digest, "updated_at": utc_now()}))

    def forget(self, alias: str) -> None:
        """The alias is gone from the registry: a restart must not bring its last version back."""
        (self.root / alias / MANIFEST).unlink(missing_ok=True)

    def install(self, alias: str, version: str, run_id: str, fetch: Callable[[Path], Path]) -> None:
        """Fetch into a private directory, stamp it, then rename it into place in one step.

        `fetch(dst)` writes the model directory at `dst` (which must not exist) and returns it.
        """
        final = self.path(alias, version)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # what is unpickled: no other user may write it
        final.parent.mkdir(mode=0o700, exist_ok=True)
        incoming = final.parent / f".incoming-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            local = fetch(incoming)
            (local / STAMP).write_text(json.dumps(
                {"model_name": self.model_name, "alias": alias, "version": version, "run_id": run_id,
                 "downloaded_at": utc_now()}), encoding="utf-8")
            for _ in range(INSTALL_ATTEMPTS):
                try:
                    os.rename(local, final)
                    return
                except OSError:
                    if self.holds(alias, version, run_id):
                        return  # another worker installed the same version first
                    self.discard(alias, version)  # a stale directory from another model or registry
            raise CacheError(f"could not install {alias} v{version} into {final}")
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    def discard(self, alias: str, version: str) -> None:
        """Remove a cached version; renamed away first, so no worker ever loads it half-deleted."""
        path = self.path(alias, version)
        trash = path.parent / f".stale-{uuid.uuid4().hex}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def prune(self, alias: str, keep: set[str]) -> None:
        """Keep the served and the previous version (a rollback loads from disk); drop the rest.

        Best effort: other workers prune the same directory concurrently.
        """
        for entry in (self.root / alias).iterdir():
            try:
                if not entry.is_dir():
                    continue
                if entry.name.startswith("."):
                    stale = time.time() - entry.stat().st_mtime > STALE_DOWNLOAD_S
                else:
                    stale = entry.name not in keep
            except OSError:
                continue
            if stale:
                shutil.rmtree(entry, ignore_errors=True)
