"""The store of a worker's models: `models:/<name>@champion` and `@challenger`, kept current and on disk.

Requests read one immutable `Models` snapshot; the poll thread builds a new snapshot off to the
side and publishes it with a single reference assignment, so an alias move swaps models without a
restart and an in-flight request finishes with the objects it started with.

The same poll carries the shared A/B config: after the registry call that returns the aliases, it
reads the config store's row (`router.configdb`) and hands both to `self.config` (`router.config`).

Every version is downloaded once into the disk cache (`router.cache`, under `router/cache/`).
When MLflow is unreachable the store loads the versions the aliases served last from there and
reports source "cache" until the registry answers again. Nothing here raises into a request or
kills a worker: failures keep the previous models and show up in /ready and the log.

A version is unpickled only when its files match the digest the pipeline recorded on it
(router.models.verify), whether downloaded now or read from the cache. A refused version is named
in /ready's `last_error`, the log and `ticket_ab_model_refusals_total`, and is not downloaded
again on every poll: its refusal stands for REFUSAL_RETRY_S unless its alias moves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from router import metrics
from router.cache import STAMP, ModelCache, utc_now
from router.config import CACHE_FILE, ABConfig, ConfigStore, ConfigUnavailable, Published, Start
from router.configdb import open_table
from router.models import FROM_CACHE, FROM_REGISTRY, LoadedModel, ModelError, ModelRefused, Models, load_model, verify
from ticket_ab.log import get_logger, kv
from ticket_ab.names import CHALLENGER, CHAMPION, SERVED_ALIASES
from ticket_ab.registry import RegistryState, RegistryUnavailable, RegistryVersion, ServingRegistry
from ticket_ab.settings import Settings

log = get_logger("router.store")
OWN_FILES = (STAMP,)  # what the cache adds to a version's directory: not part of its digest
REFUSAL_RETRY_S = 300.0  # a refused version is fetched and checked again after this long (an operator may restore it)


class Registry(Protocol):
    """What the store needs from a model registry (ticket_ab.registry.ServingRegistry, a fake in unit tests)."""

    def state(self) -> RegistryState:
        """Alias targets (None: no such alias) and config tag in one request; RegistryUnavailable if it cannot."""
        ...

    def download(self, version: str, dst: Path) -> Path:
        """Write the MLflow model directory of `version` at `dst` (which must not exist) and return it."""
        ...


class Store(Protocol):
    """What the views need from a model store (unit tests substitute an in-memory one)."""

    config: ConfigStore  # the shared A/B config, kept current by the same poll as the models

    def snapshot(self) -> Models:
        """The models to use for one whole request."""
        ...

    def status(self) -> dict[str, Any]:
        """The /ready body: model_name, champion, challenger, source, registry, last_error."""
        ...

    def start(self) -> None:
        """Load the models; called once by create_app."""
        ...

    def stop(self) -> None:
        """Stop background work."""
        ...


def published(state: RegistryState) -> Published:
    """The facts every replica derives the A/B config and its experiment id from."""
    champion, challenger = (state.aliases.get(alias) for alias in (CHAMPION, CHALLENGER))
    return Published(state.config_tag, champion.version if champion else None,
                     challenger.version if challenger else None)


def shared_config(settings: Settings) -> ConfigStore:
    """The A/B config kept in TICKET_AB_CONFIG_STORE, cached under the router's state dir, the settings' split
    by default."""
    rollout = settings.rollout
    start = Start(rollout.start, rollout.ramp_steps[0] if rollout.start == "step" else 0.0)
    return ConfigStore(settings.router_dir / CACHE_FILE, ABConfig(ab_split_b=settings.router.split_b),
                       open_table(settings.router.config_store, settings.router_dir, settings.model_name), start)


class ModelStore:
    """Champion and challenger for one worker: loaded at start, polled, swapped atomically."""

    def __init__(self, settings: Settings, source: Registry | None = None) -> None:
        self.model_name = settings.model_name
        self.cache = ModelCache(settings.router_dir / "cache", settings.model_name)
        self.reload_s = settings.router.reload_s
        self._registry = source or ServingRegistry(settings.tracking_uri, settings.model_name)
        self.config = shared_config(settings)
        self._config_error: str | None = None
        self._models = Models()
        self._registry_state: dict[str, Any] = {"reachable": None, "checked_at": None, "error": None}
        self._last_error: str | None = None
        self._errors: list[str] = []  # collected during one refresh, published as last_error
        self._refused: dict[str, tuple[RegistryVersion, str, float]] = {}  # alias -> (target, why, when)
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> Models:
        """The current models; hold on to the result for the whole request."""
        return self._models

    def start(self, poll: bool = True) -> None:
        """Load synchronously (so a worker is ready when it accepts traffic), then poll in the background."""
        try:
            self.refresh()
        except Exception:  # a worker without models still answers /health and /ready; the poll retries
            log.exception(kv("initial_load_failed", model=self.model_name))
        if poll and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="model-store-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the poll thread (tests and scripts; gunicorn workers just exit)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def status(self) -> dict[str, Any]:
        """What /ready reports: versions, where they came from, and whether the registry answers."""
        models = self._models
        return {
            "model_name": self.model_name,
            "champion": models.champion.describe() if models.champion else None,
            "challenger": models.challenger.describe() if models.challenger else None,
            "source": models.champion.source if models.champion else None,
            "registry": dict(self._registry_state),
            "last_error": self._last_error,
        }

    def refresh(self) -> None:
        """One poll: ask the registry, load what moved, publish one new snapshot, then the config.

        Registry and model failures never raise: they keep the current models and config and are
        reported in /ready (`registry`, `last_error`, which describe the latest poll) and in the log.
        The config follows the models, so a row's experiment id rarely runs ahead of its model.
        """
        with self._refresh_lock:
            self._errors = []
            state = self._ask()
            models = self._models
            for alias in SERVED_ALIASES:
                synced = False
                if state is not None:
                    models, synced = self._sync(models, alias, state.aliases.get(alias))
                if not synced and getattr(models, alias) is None:
                    models = self._from_cache(models, alias)
            self._last_error = "; ".join(self._errors) or None
            self._publish(models)
            self._follow_config(published(state) if state is not None else Published(
                None, *(model.version if model else None for model in (models.champion, models.challenger))))

    def _follow_config(self, facts: Published) -> None:
        """The config store's row with the aliases just read (the registry down: the versions served, which the
        aliases pointed at last); an unreachable store keeps the config in effect and is logged when that changes."""
        try:
            self.config.follow(facts)
        except ConfigUnavailable as exc:
            if str(exc) != self._config_error:
                log.warning(kv("config_store_unreachable", model=self.model_name, error=exc))
            self._config_error = str(exc)
            return
        if self._config_error is not None:
            log.info(kv("config_store_reachable", model=self.model_name))
        self._config_error = None

    def _ask(self) -> RegistryState | None:
        """The registry's state, or None (recorded for /ready and logged on change) if it cannot be asked."""
        was_reachable = self._registry_state["reachable"]
        try:
            state = self._registry.state()
        except Exception as exc:  # whatever the client raised, the registry could not be asked
            error = str(exc) if isinstance(exc, RegistryUnavailable) else f"{type(exc).__name__}: {exc}"
            if was_reachable is not False:
                log.warning(kv("registry_unreachable", model=self.model_name, error=error))
            self._registry_state = {"reachable": False, "checked_at": utc_now(), "error": error}
            return None
        self._registry_state = {"reachable": True, "checked_at": utc_now(), "error": None}
        if was_reachable is False:
            log.info(kv("registry_reachable", model=self.model_name))
        return state

    def _poll(self) -> None:
        while not self._stop.wait(self.reload_s):
            try:
                self.refresh()
            except Exception:  # the poll thread must outlive any bug in one poll
                log.exception(kv("poll_failed", model=self.model_name))

    def _sync(self, models: Models, alias: str, target: RegistryVersion | None) -> tuple[Models, bool]:
        """Bring one alias in line with the registry; (models, True) when it now matches."""
        current: LoadedModel | None = getattr(models, alias)
        if target is None:
            if alias == CHAMPION and current is not None:
                log.warning(kv("champion_alias_missing", model=self.model_name, keep_serving=current.version))
                return models, True
            if current is not None:
                log.info(kv("model_unloaded", model=self.model_name, alias=alias, version=current.version))
            self.cache.forget(alias)
            return replace(models, **{alias: None}), True
        if current is not None and (current.version, current.run_id, current.digest) == (
                target.version, target.run_id, target.digest):
            if current.source != FROM_REGISTRY:
                models = replace(models, **{alias: replace(current, source=FROM_REGISTRY)})
            return models, True
        if self._still_refused(alias, target):
            return models, False
        try:
            loaded = self._load_version(alias, target)
        except ModelRefused as exc:  # not what the pipeline registered: never unpickled, the served one stays
            self._refuse(alias, target, exc)
            return models, False
        except Exception as exc:  # a broken new version must not take down the one being served
            self._errors.append(f"{alias} v{target.version}: {exc}")
            log.error(kv("model_load_failed", model=self.model_name, alias=alias, version=target.version, error=exc))
            return models, False
        log.info(kv("model_loaded", model=self.model_name, alias=alias, version=target.version,
                    replaced=current.version if current else None, scoring=loaded.scoring))
        return replace(models, **{alias: loaded}), True

    def _still_refused(self, alias: str, target: RegistryVersion) -> bool:
        """`target` was refused lately: say so again (for /ready) without fetching it again."""
        refused = self._refused.get(alias)
        if refused is None or refused[0] != target or time.monotonic() - refused[2] > REFUSAL_RETRY_S:
            return False
        self._errors.append(refused[1])
        return True

    def _refuse(self, alias: str, target: RegistryVersion, exc: ModelRefused) -> None:
        self._refused[alias] = (target, str(exc), time.monotonic())
        self._errors.append(str(exc))
        log.error(kv("model_refused", model=self.model_name, alias=alias, version=target.version, reason=exc.reason,
                     error=exc))
        metrics.MODEL_REFUSALS.labels(alias=alias, version=target.version, reason=exc.reason).inc()

    def _load_version(self, alias: str, target: RegistryVersion) -> LoadedModel:
        path = self.cache.path(alias, target.version)
        if not target.digest:  # refused before anything is fetched
            verify(path, alias, target.version, target.digest)
        load = partial(load_model, path, alias, target.version, target.run_id, FROM_REGISTRY, target.digest,
                       OWN_FILES)
        loaded = None
        if self.cache.holds(alias, target.version, target.run_id):
            try:
                loaded = load()
            except ModelError as exc:  # damaged or altered on disk: fetch it again
                log.warning(kv("cache_damaged", model=self.model_name, alias=alias, version=target.version, error=exc))
                self.cache.discard(alias, target.version)
        if loaded is None:
            self.cache.install(alias, target.version, target.run_id, partial(self._registry.download, target.version))
            loaded = load()
        self.cache.set_current(alias, target.version, target.run_id, target.digest)
        self.cache.prune(alias, keep={target.version, *(m.version for m in [getattr(self._models, alias)] if m)})
        metrics.MODEL_LOADS.labels(alias=alias, source=FROM_REGISTRY).inc()
        return loaded

    def _from_cache(self, models: Models, alias: str) -> Models:
        """The last version this alias served, from disk: how a router starts while MLflow is down."""
        current = self.cache.current(alias)
        if current is None or not self.cache.holds(alias, *current[:2]):
            return models
        version, run_id, digest = current
        try:
            loaded = load_model(self.cache.path(alias, version), alias, version, run_id, FROM_CACHE, digest, OWN_FILES)
        except ModelError as exc:
            self._errors.append(f"{alias} v{version} from cache: {exc}")
            log.error(kv("cache_load_failed", model=self.model_name, alias=alias, version=version, error=exc))
            return models
        log.info(kv("model_loaded", model=self.model_name, alias=alias, version=version, source=FROM_CACHE,
                    scoring=loaded.scoring))
        metrics.MODEL_LOADS.labels(alias=alias, source=FROM_CACHE).inc()
        return replace(models, **{alias: loaded})

    def _publish(self, models: Models) -> None:
        self._models = models
        for alias in SERVED_ALIASES:
            model = getattr(models, alias)
            version = int(model.version) if model and model.version.isdigit() else 0
            metrics.MODEL_VERSION.labels(alias=alias).set(version)
