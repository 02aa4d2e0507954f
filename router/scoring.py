"""Requests' answers: pick each ticket's arm, score with the chosen model, fall back or shadow-score.

The challenger is the experimental model, so its failures are contained here: if it raises, the
champion answers and the outcome records why. The champion's own failure is not contained (there
is nothing to fall back to) and becomes a 500 in the views.

Every outcome also knows the champion's confidence in the ticket, the A/B report's CUPAC covariate
(analysis.covariate): free when the champion answered or shadow-scored it; when the challenger
answered, only if asked (`score_champion`, TICKET_AB_LOG_CHAMPION_CONFIDENCE), by scoring the
champion's topic head too. That extra scoring is for the log alone, so its failure is contained like the
challenger's: the answer stands and the outcome records why the covariate is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from router.assign import assign
from router.config import ABConfig
from router.models import LoadedModel
from router.predictor import Scores, score_many, score_many_both
from ticket_ab.names import CHAMPION, SHADOW, A, B
from ticket_ab.twohead import decide_priority_index

CHALLENGER_ERROR = "challenger_error"


@dataclass(frozen=True)
class Prediction:
    """One model's answer for one ticket."""

    alias: str
    version: str
    topic: str
    confidence: float
    scores: dict[str, float]
    priority: str | None = None  # None: the version has no priority head (`ticket_ab.twohead.heads_of`)
    priority_confidence: float | None = None
    priority_scores: dict[str, float] | None = None


Predict = Callable[[LoadedModel, Sequence[str]], list[Prediction]]  # predict_all, or predict_topics


@dataclass(frozen=True)
class Outcome:
    """What a request was assigned, what it was served, and what the log needs to explain it."""

    variant: str  # the assigned arm (A in shadow mode and when there is no challenger)
    served: Prediction  # the answer returned to the caller
    fallback: str = ""  # "challenger_error:<ExceptionType>" when the challenger failed
    shadow: Prediction | None = None  # shadow mode: the challenger's prediction
    error: str = ""  # the challenger's exception, for the server log only
    champion: Prediction | None = None  # the challenger served and `score_champion` asked: the champion's topic
    champion_error: str = ""  # that extra scoring's exception, for the server log only

    @property
    def champion_confidence(self) -> float | None:
        """The champion's top-class probability on this ticket, from whichever prediction is the champion's
        (None: the champion did not score it)."""
        for one in (self.served, self.shadow, self.champion):
            if one is not None and one.alias == CHAMPION:
                return one.confidence
        return None


def _rounded(classes: Sequence[str], proba: Sequence[float]) -> dict[str, float]:
    """Every class's probability, rounded: six decimals are plenty for analysis."""
    return {name: round(float(p), 6) for name, p in zip(classes, proba, strict=True)}


def _prediction(model: LoadedModel, scores: Scores) -> Prediction:
    """Topic, confidence and all class scores; with a priority head, the priority by `decide_priority` (the
    model's own rule, its urgent threshold included), its probability and every priority's."""
    proba = scores.topic
    best = int(np.argmax(proba))
    topic = (model.alias, model.version, model.classes[best], round(float(proba[best]), 6),
             _rounded(model.classes, proba))
    if scores.priority is None:
        return Prediction(*topic)
    chances = scores.priority
    pick = int(decide_priority_index(chances[np.newaxis, :], model.priority_classes, model.urgent_threshold)[0])
    return Prediction(*topic, priority=model.priority_classes[pick], priority_confidence=round(float(chances[pick]), 6),
                      priority_scores=_rounded(model.priority_classes, chances))


def predict_all(model: LoadedModel, texts: Sequence[str]) -> list[Prediction]:
    """One prediction per text: a lone text takes the model's compiled one-ticket scorer (the /predict
    path, see router.predictor), several take one batched `predict_proba` per head (far less per ticket)."""
    if len(texts) == 1:
        return [_prediction(model, model.score(texts[0]))]
    if not texts:
        return []
    topics, priorities = score_many_both(model.pipeline, texts)
    return [_prediction(model, Scores(topic, None if priorities is None else priorities[i]))
            for i, topic in enumerate(topics)]


def predict_topics(model: LoadedModel, texts: Sequence[str]) -> list[Prediction]:
    """`predict_all` of the topic head alone (no priority): what the champion's covariate reads, so a two-head
    champion scoring the challenger's tickets for the log does not run its priority head too."""
    if model.score_topic is None:
        return predict_all(model, texts)
    if len(texts) == 1:
        return [_prediction(model, Scores(model.score_topic(texts[0]), None))]
    return [_prediction(model, Scores(topic, None)) for topic in score_many(model.pipeline, texts)] if texts else []


def _failed(exc: Exception) -> tuple[str, str]:
    return f"{CHALLENGER_ERROR}:{type(exc).__name__}", repr(exc)


def _beside(model: LoadedModel, texts: Sequence[str],
            predict: Predict = predict_all) -> tuple[list[Prediction | None], Exception | None]:
    """`model`'s predictions of `texts` scored beside the served ones (for the log only), or Nones and what it
    raised: a prediction nobody is answered with must never affect the answer."""
    try:
        return list(predict(model, texts)), None
    except Exception as exc:  # whatever the model raised, the served answers stand
        return [None] * len(texts), exc


def _shadow(texts: Sequence[str], champion: LoadedModel, challenger: LoadedModel) -> list[Outcome]:
    served = predict_all(champion, texts)
    shadows, exc = _beside(challenger, texts)
    fallback, error = _failed(exc) if exc is not None else ("", "")
    return [Outcome(A, one, fallback=fallback, shadow=other, error=error)
            for one, other in zip(served, shadows, strict=True)]


def _arm_b(texts: Sequence[str], champion: LoadedModel, challenger: LoadedModel, score_champion: bool) -> list[Outcome]:
    try:
        served = predict_all(challenger, texts)
    except Exception as exc:  # a broken challenger costs the experiment rows, not the users their answers
        fallback, error = _failed(exc)
        return [Outcome(B, one, fallback=fallback, error=error) for one in predict_all(champion, texts)]
    champions, exc = _beside(champion, texts, predict_topics) if score_champion else ([None] * len(texts), None)
    return [Outcome(B, one, champion=other, champion_error="" if exc is None else repr(exc))
            for one, other in zip(served, champions, strict=True)]


def serve_all(texts: Sequence[str], champion: LoadedModel, challenger: LoadedModel | None, config: ABConfig,
              keys: Sequence[str | None], draws: Sequence[float | None] | None = None, *,
              score_champion: bool = False) -> list[Outcome]:
    """Answer each ticket under `config`, each arm's tickets scored together (`draws` fix keyless coins in tests);
    with `score_champion`, the champion scores the challenger's tickets too, for the log's covariate.

    In a batch the challenger's tickets stand or fall together: if scoring them raises, the
    champion answers all of them and each row records the fallback.
    """
    if challenger is None:
        return [Outcome(A, one) for one in predict_all(champion, texts)]
    if config.mode == SHADOW:
        return _shadow(texts, champion, challenger)
    draws = draws or [None] * len(texts)
    arms = [assign(key, config.ab_split_b, config.experiment_id, draw) for key, draw in zip(keys, draws, strict=True)]
    groups = {arm: [i for i, each in enumerate(arms) if each == arm] for arm in (A, B)}
    outcomes: list[Outcome | None] = [None] * len(texts)
    for arm, answer in ((A, lambda part: [Outcome(A, one) for one in predict_all(champion, part)]),
                        (B, lambda part: _arm_b(part, champion, challenger, score_champion))):
        for i, outcome in zip(groups[arm], answer([texts[i] for i in groups[arm]]), strict=True):
            outcomes[i] = outcome
    return outcomes


def serve(text: str, champion: LoadedModel, challenger: LoadedModel | None, config: ABConfig, key: str | None,
          draw: float | None = None, *, score_champion: bool = False) -> Outcome:
    """Answer one ticket under `config` (`draw` fixes the coin for a keyless request in tests; `score_champion`:
    see `serve_all`)."""
    return serve_all([text], champion, challenger, config, [key], [draw], score_champion=score_champion)[0]
