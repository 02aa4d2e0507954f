"""Score one ticket with a registered pipeline, skipping plumbing when that is checked to be equivalent.

Registered models are `Pipeline(features=ColumnTransformer([(name, vectorizer, "text")]), ..., clf)`
(see retrain.ml.features). For a single ticket most of `predict_proba`'s time is wrapper work: a
one-row DataFrame, ColumnTransformer's column selection and feature-name checks, a joblib Parallel
around one transformer, and TfidfVectorizer's input validation and sparse-matrix bookkeeping.
Two faster scorers call the same fitted steps with less around them:
- `direct`: the fitted vectorizer and classifier on `[text]`, without the DataFrame and ColumnTransformer;
- `tfidf`: the TF-IDF row of one vectorizer or of a word + character FeatureUnion built straight from
  the fitted analyzers, vocabularies and idf (router.features_fast), then the classifier's own
  arithmetic written out for the shapes AutoML serves: linear models, sigmoid-calibrated linear
  models, naive Bayes, soft voting (router.heads_fast); other classifiers get the row as a matrix.
A scorer is used only after a load-time check that it gives the same probabilities as the full
pipeline on sample tickets (exactly for `direct`; within float rounding, with the same predicted
class, for `tfidf`). Any other shape, or any difference, uses the full pipeline, so an unusual
model is slower but never scored differently.

A two-head version (`ticket_ab.twohead.TwoHeadModel`) answers a topic and a priority from one set of
features, so `compile_both` builds the ticket's row once and scores both heads from it (a head that is
not written out gets the row as a matrix and its own `predict_proba`), checked against the model's
`predict_both`. A plain Pipeline (an older one-head version) and a model whose priority head was skipped
are scored as before, with no priority (`Scores.priority` None). `compile_scorer` and `score_many`
stay topic-only: CUPAC's covariate and the benches read them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from router.features_fast import as_row, text_features
from router.heads_fast import Head, compile_head
from ticket_ab.schema import TEXT
from ticket_ab.twohead import PRIORITY_HEAD, TOPIC_HEAD, TwoHeadModel, heads_of, probabilities

Scorer = Callable[[str], np.ndarray]  # one ticket text -> class probabilities (1-D, in `classes_` order)


class Scores(NamedTuple):
    """One ticket's probabilities per head: `topic` in `classes_` order, `priority` in `priority_classes_` order
    (None: the version has no priority head)."""

    topic: np.ndarray
    priority: np.ndarray | None


BothScorer = Callable[[str], Scores]  # one ticket text -> Scores
DIRECT = "direct"
TFIDF = "tfidf"
PIPELINE = "pipeline"
ROUNDING = {"rtol": 1e-5, "atol": 1e-7}  # float32 sums in another order: the only allowed difference
SAMPLES = (
    "cannot log in to the vpn after the password reset",
    "Invoice #4411 charged twice, please refund",
    "printer",
    "Outlook: вложения не открываются, ошибка 0x80070005 since v3.14.2",
    "",
)


def pipeline_scorer(pipeline: Any) -> Scorer:
    """The reference path: exactly what `mlflow.sklearn` users call."""
    return lambda text: pipeline.predict_proba(pd.DataFrame({TEXT: [text]}))[0]


def score_many(pipeline: Any, texts: Sequence[str]) -> np.ndarray:
    """Topic probabilities of many tickets in one call of the reference path: per ticket, the
    DataFrame and ColumnTransformer overhead vanishes in a batch, so nothing needs compiling."""
    return pipeline.predict_proba(pd.DataFrame({TEXT: list(texts)}))


def score_many_both(model: Any, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(topic, priority or None) probabilities of many tickets, the features built once for both heads."""
    return probabilities(model, pd.DataFrame({TEXT: list(texts)}))


def _standard_parts(pipeline: Any) -> tuple[Any, list[Any], Any] | None:
    """(vectorizer, middle steps, classifier) of the standard shape, or None for any other shape (a two-head
    model's topic head counts as its pipeline: the same features, the same classifier)."""
    if isinstance(pipeline, TwoHeadModel):
        pipeline = pipeline.head_pipeline(TOPIC_HEAD)
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        return None
    features = pipeline.steps[0][1]
    if not isinstance(features, ColumnTransformer) or not getattr(features, "sparse_output_", False):
        return None
    active = [(transformer, column) for _, transformer, column in features.transformers_
              if not (isinstance(transformer, str) and transformer == "drop")]
    if len(active) != 1 or active[0][1] != TEXT or isinstance(active[0][0], str):
        return None
    middle = [step for _, step in pipeline.steps[1:-1] if not (isinstance(step, str) or step is None)]
    return active[0][0], middle, pipeline.steps[-1][1]


def _classify(middle: list[Any], final: Any) -> Callable[[Any], np.ndarray]:
    def classify(matrix: Any) -> np.ndarray:
        for step in middle:
            matrix = step.transform(matrix)
        return final.predict_proba(matrix)[0]

    return classify


def direct_scorer(pipeline: Any) -> Scorer | None:
    """The same fitted steps without the DataFrame wrapper, or None if the shape is not the standard one."""
    parts = _standard_parts(pipeline)
    if parts is None:
        return None
    vectorizer, middle, final = parts
    classify = _classify(middle, final)
    return lambda text: classify(vectorizer.transform([text]))


def tfidf_scorer(pipeline: Any) -> Scorer | None:
    """The feature row built by hand, then the classifier's arithmetic written out (see router.heads_fast) or,
    for another classifier, its own predict_proba; None unless the features are TF-IDF (see router.features_fast)."""
    parts = _standard_parts(pipeline)
    if parts is None:
        return None
    vectorizer, middle, final = parts
    built = text_features(vectorizer)
    if built is None:
        return None
    features, width = built
    head = None if middle else compile_head(final)
    if head is not None:
        return lambda text: head(features(text))
    classify = _classify(middle, final)
    return lambda text: classify(as_row(features(text), width))


def both_reference(model: Any) -> BothScorer:
    """The reference path of a two-head model: `predict_both` on a one-row DataFrame."""
    def score(text: str) -> Scores:
        topic, priority = model.predict_both(pd.DataFrame({TEXT: [text]}))
        return Scores(topic[0], priority[0])

    return score


def _row_head(classifier: Any, width: int) -> Head:
    """A head not written out: the hand-built row as a matrix, then the classifier's own `predict_proba`."""
    return lambda features: classifier.predict_proba(as_row(features, width))[0]


def two_head_tfidf_scorer(model: TwoHeadModel) -> BothScorer | None:
    """The TF-IDF row built by hand ONCE per ticket, then each head's arithmetic on it (router.heads_fast, or the
    head's own predict_proba on the row); None unless the shared features are TF-IDF."""
    parts = _standard_parts(model)
    if parts is None or parts[1]:
        return None
    built = text_features(parts[0])
    if built is None:
        return None
    features, width = built
    topic, priority = (compile_head(head) or _row_head(head, width) for head in (model.topic_, model.priority_))
    return lambda text: Scores(topic(row := features(text)), priority(row))


def two_head_direct_scorer(model: TwoHeadModel) -> BothScorer | None:
    """The fitted vectorizer once on `[text]`, then both heads, without the DataFrame wrapper."""
    parts = _standard_parts(model)
    if parts is None or parts[1]:
        return None
    vectorizer, topic, priority = parts[0], model.topic_, model.priority_
    return lambda text: Scores(topic.predict_proba(row := vectorizer.transform([text]))[0],
                               priority.predict_proba(row)[0])


def _same(got: np.ndarray | None, want: np.ndarray | None, exact: bool) -> bool:
    if got is None or want is None:
        return got is want
    return np.array_equal(got, want) if exact else (
        np.allclose(got, want, **ROUNDING) and got.argmax() == want.argmax())


def _agrees(candidate: Callable[[str], Any], reference: Callable[[str], Any], samples: Sequence[str],
            exact: bool) -> bool:
    """Whether `candidate` answers as `reference` on every sample (each head of Scores compared on its own)."""
    try:
        for text in samples:
            got, want = candidate(text), reference(text)
            pairs = zip(got, want, strict=True) if isinstance(want, Scores) else ((got, want),)
            if not all(_same(one, other, exact) for one, other in pairs):
                return False
        return True
    except Exception:  # a shape we misjudged: the reference path is always right
        return False


def _fastest(model: Any, reference: Callable[[str], Any], fast: Callable[[Any], Any], direct: Callable[[Any], Any],
             samples: Sequence[str]) -> tuple[Any, str]:
    """The first of the hand-built (`fast`) and fitted-steps (`direct`) scorers that answers as `reference` on
    `samples`, with its name; else the reference itself."""
    for build, name, exact in ((fast, TFIDF, False), (direct, DIRECT, True)):
        try:
            candidate = build(model)
        except Exception:  # an attribute this scikit-learn lacks: the reference path is always right
            continue
        if candidate is not None and _agrees(candidate, reference, samples, exact):
            return candidate, name
    return reference, PIPELINE


def compile_scorer(pipeline: Any, samples: Sequence[str] = SAMPLES) -> tuple[Scorer, str]:
    """The fastest scorer that matches the full pipeline on `samples`, and its name for /ready."""
    return _fastest(pipeline, pipeline_scorer(pipeline), tfidf_scorer, direct_scorer, samples)


def compile_both(model: Any, samples: Sequence[str] = SAMPLES) -> tuple[BothScorer, str]:
    """The fastest scorer of every head the model has that matches its `predict_both` on `samples`, and its name.

    A one-head version gets `compile_scorer`'s topic scorer with no priority."""
    if PRIORITY_HEAD not in heads_of(model):
        topic, name = compile_scorer(model, samples)
        return (lambda text: Scores(topic(text), None)), name
    return _fastest(model, both_reference(model), two_head_tfidf_scorer, two_head_direct_scorer, samples)
