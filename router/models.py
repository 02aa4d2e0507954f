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
from router.predictor import BothScorer, Scorer, compile_both, compile_scorer
from ticket_ab import registry
from ticket_ab.twohead import PRIORITY_HEAD, TOPIC_HEAD, heads_of

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
    pipeline: Any  # a fitted sklearn Pipeline or ticket_ab.twohead.TwoHeadModel over a DataFrame with `text`
    classes: tuple[str, ...]
    score: BothScorer  # one text -> Scores (topic, priority or None), see router.predictor
    scoring: str  # which scorer: predictor.TFIDF, predictor.DIRECT or predictor.PIPELINE
    source: str  # FROM_REGISTRY or FROM_CACHE
    loaded_at: str
    digest: str | None = None  # what its files hashed to (ticket_ab.registry.model_digest) when it was loaded
    priority_classes: tuple[str, ...] = ()  # () for a one-head version: it answers no priority
    urgent_threshold: float | None = None  # ticket_ab.twohead.decide_priority's threshold (None: the likeliest)
    score_topic: Scorer | None = None  # a two-head version's topic head alone (the log's covariate); None: `score`

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads this version answers: topic, and priority when it has a priority head."""
        return (TOPIC_HEAD, PRIORITY_HEAD) if self.priority_classes else (TOPIC_HEAD,)

    def describe(self) -> dict[str, Any]:
        """The /ready view of this model, with the heads it answers (a one-head version answers no priority)."""
        return {"version": self.version, "run_id": self.run_id, "source": self.source, "scoring": self.scoring,
                "loaded_at": self.loaded_at, "heads": list(self.heads)}


@dataclass(frozen=True)
class Models:
    """What one request uses from start to finish."""

    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None


def priority_parts(pipeline: Any) -> tuple[tuple[str, ...], float | None]:
    """(priority classes, urgent threshold) of a version: ((), None) when it has no priority head."""
    if PRIORITY_HEAD not in heads_of(pipeline):
        return (), None
    return tuple(str(c) for c in pipeline.priority_classes_), pipeline.urgent_threshold


def _check_shapes(alias: str, version: str, scores: Any, classes: tuple[str, ...],
                  priorities: tuple[str, ...]) -> None:
    """The warm-up's scores must have one column per class of each head the version has."""
    if scores.topic.shape != (len(classes),):
        raise ModelError(f"{alias} v{version} returned scores of shape {scores.topic.shape} for {len(classes)} "
                         "classes")
    got = None if scores.priority is None else scores.priority.shape
    if got != ((len(priorities),) if priorities else None):
        raise ModelError(f"{alias} v{version} returned priority scores of shape {got} for {len(priorities)} "
                         "priority classes")


def serving_model(alias: str, version: str, run_id: str, pipeline: Any, source: str,
                  digest: str | None = None) -> LoadedModel:
    """Wrap a fitted model for serving, after proving it can score a ticket with every head (warm-up prediction)."""
    try:
        classes = tuple(str(c) for c in pipeline.classes_)
        priorities, threshold = priority_parts(pipeline)
        score, scoring = compile_both(pipeline)
        score_topic = compile_scorer(pipeline)[0] if priorities else None
        scores = score(WARMUP_TEXT)
    except Exception as exc:
        raise ModelError(f"{alias} v{version} cannot serve: {type(exc).__name__}: {exc}") from exc
    _check_shapes(alias, version, scores, classes, priorities)
    return LoadedModel(alias, version, run_id, pipeline, classes, score, scoring, source, utc_now(), digest,
                       priorities, threshold, score_topic)


def load_model(path: Path, alias: str, version: str, run_id: str, source: str, digest: str | None,
               ignore: tuple[str, ...] = ()) -> LoadedModel:
    """Load a cached MLflow sklearn model directory into a LoadedModel, once its files match `digest`."""
    verify(path, alias, version, digest, ignore)
    try:
        pipeline = registry.load_local(path)
    except Exception as exc:
        raise ModelError(f"model at {path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return serving_model(alias, version, run_id, pipeline, source, digest)
