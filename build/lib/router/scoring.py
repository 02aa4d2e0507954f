"""One request's answer: pick the arm, score with the chosen model, fall back or shadow-score.

The challenger is the experimental model, so its failures are contained here: if it raises, the
champion answers and the outcome records why. The champion's own failure is not contained (there
is nothing to fall back to) and becomes a 500 in the views.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrain.contracts.names import SHADOW, A, B
from router.assign import assign
from router.config import ABConfig
from router.store import LoadedModel

CHALLENGER_ERROR = "challenger_error"


@dataclass(frozen=True)
class Prediction:
    """One model's answer for one ticket."""

    alias: str
    version: str
    topic: str
    confidence: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Outcome:
    """What a request was assigned, what it was served, and what the log needs to explain it."""

    variant: str  # the assigned arm (A in shadow mode and when there is no challenger)
    served: Prediction  # the answer returned to the caller
    fallback: str = ""  # "challenger_error:<ExceptionType>" when the challenger failed
    shadow: Prediction | None = None  # shadow mode: the challenger's prediction
    error: str = ""  # the challenger's exception, for the server log only


def predict(model: LoadedModel, text: str) -> Prediction:
    """Topic, confidence and all class scores (rounded: six decimals are plenty for analysis)."""
    proba = model.score(text)
    best = int(proba.argmax())
    scores = {topic: round(float(p), 6) for topic, p in zip(model.classes, proba, strict=True)}
    return Prediction(model.alias, model.version, model.classes[best], round(float(proba[best]), 6), scores)


def serve(text: str, champion: LoadedModel, challenger: LoadedModel | None, config: ABConfig, key: str | None,
          draw: float | None = None) -> Outcome:
    """Answer one ticket under `config` (`draw` fixes the coin for keyless requests in tests)."""
    if challenger is None:
        return Outcome(A, predict(champion, text))
    if config.mode == SHADOW:
        served = predict(champion, text)
        try:
            return Outcome(A, served, shadow=predict(challenger, text))
        except Exception as exc:  # the shadow's failure must never affect the answer
            return Outcome(A, served, fallback=f"{CHALLENGER_ERROR}:{type(exc).__name__}", error=repr(exc))
    if assign(key, config.ab_split_b, config.experiment_id, draw) == A:
        return Outcome(A, predict(champion, text))
    try:
        return Outcome(B, predict(challenger, text))
    except Exception as exc:  # a broken challenger costs the experiment a row, not the user an answer
        return Outcome(B, predict(champion, text), fallback=f"{CHALLENGER_ERROR}:{type(exc).__name__}",
                       error=repr(exc))
