"""What a worker serves: a registered version turned into a scorer, and the pair one request uses.

A version becomes servable only after it has scored a ticket here (the warm-up), so a broken
version is refused when it is loaded, off the request path, and the version in service stays.
Before that, its files must hash to the digest the pipeline recorded when it registered the version
(ticket_ab.registry.ARTIFACT_DIGEST_TAG): the model is a cloudpickle, and unpickling runs its code,
so a version without that record, or whose files were swapped since, is never unpickled.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.cache import utc_now
from router.predictor import Scorer, compile_scorer
from ticket_ab import registry

FROM_REGISTRY = "registry"
FROM_CACHE = "cache"
WARMUP_TEXT = "cannot log in to the vpn after the password reset"


class ModelError(RuntimeError):
    """A downloaded model cannot serve: not loadable, or fails the warm-up prediction."""


UNRECORDED, MISMATCH = "unrecorded", "mismatch"  # why a version is refused (the metric's `reason`)


class ModelRefused(ModelError):
    """A version that must not be unpickled: no recorded digest, or files that do not match it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def verify(path: Path, alias: str, version: str, digest: str | None, ignore: tuple[str, ...] = ()) -> None:
    """Raise ModelRefused unless the files at `path` are the ones registered (`ignore`: files we add to it)."""
    if not digest:
        raise ModelRefused(f"{alias} v{version} refused: it carries no {registry.ARTIFACT_DIGEST_TAG} tag, so "
                           "it was not registered by the pipeline", UNRECORDED)
    try:
        actual = registry.model_digest(path, ignore)
    except (OSError, registry.RegistryError) as exc:
        raise ModelRefused(f"{alias} v{version} refused: its files cannot be checked ({exc})", MISMATCH) from exc
    if not hmac.compare_digest(actual, digest):
        raise ModelRefused(f"{alias} v{version} refused: its files hash to {actual[:12]}..., not the "
                           f"{digest[:12]}... recorded at registration (swapped after registering?)", MISMATCH)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve: never mutated, so a request can keep using it after a swap."""

    alias: str
    version: str
    run_id: str
    pipeline: Any  # a fitted sklearn Pipeline over a DataFrame with a `text` column
    classes: tuple[str, ...]
    score: Scorer  # one text -> probabilities, see router.predictor
    scoring: str  # which scorer: predictor.TFIDF, predictor.DIRECT or predictor.PIPELINE
    source: str  # FROM_REGISTRY or FROM_CACHE
    loaded_at: str
    digest: str | None = None  # what its files hashed to (ticket_ab.registry.model_digest) when it was loaded

    def describe(self) -> dict[str, str]:
        """The /ready view of this model."""
        return {"version": self.version, "run_id": self.run_id, "source": self.source, "scoring": self.scoring,
                "loaded_at": self.loaded_at}


@dataclass(frozen=True)
class Models:
    """What one request uses from start to finish."""

    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None


def serving_model(alias: str, version: str, run_id: str, pipeline: Any, source: str,
                  digest: str | None = None) -> LoadedModel:
    """Wrap a fitted pipeline for serving, after proving it can score a ticket (warm-up prediction)."""
    try:
        classes = tuple(str(c) for c in pipeline.classes_)
        score, scoring = compile_scorer(pipeline)
        proba = score(WARMUP_TEXT)
    except Exception as exc:
        raise ModelError(f"{alias} v{version} cannot serve: {type(exc).__name__}: {exc}") from exc
    if proba.shape != (len(classes),):
        raise ModelError(f"{alias} v{version} returned scores of shape {proba.shape} for {len(classes)} classes")
    return LoadedModel(alias, version, run_id, pipeline, classes, score, scoring, source, utc_now(), digest)


def load_model(path: Path, alias: str, version: str, run_id: str, source: str, digest: str | None,
               ignore: tuple[str, ...] = ()) -> LoadedModel:
    """Load a cached MLflow sklearn model directory into a LoadedModel, once its files match `digest`."""
    verify(path, alias, version, digest, ignore)
    try:
        pipeline = registry.load_local(path)
    except Exception as exc:
        raise ModelError(f"model at {path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return serving_model(alias, version, run_id, pipeline, source, digest)
