"""Score one ticket with a registered pipeline, skipping plumbing when that is checked to be equivalent.

Registered models are `Pipeline(features=ColumnTransformer([(name, vectorizer, "text")]), ..., clf)`
(see retrain.ml.features). For a single ticket most of `predict_proba`'s time is wrapper work: a
one-row DataFrame, ColumnTransformer's column selection and feature-name checks, a joblib Parallel
around one transformer, and TfidfVectorizer's input validation and sparse-matrix bookkeeping.
Two faster scorers call the same fitted steps with less around them:
- `direct`: the fitted vectorizer and classifier on `[text]`, without the DataFrame and ColumnTransformer;
- `tfidf`: the TF-IDF row built straight from the fitted analyzer, vocabulary and idf (the same
  arithmetic as TfidfTransformer, in the vectorizer's dtype), then the fitted classifier.
A scorer is used only after a load-time check that it gives the same probabilities as the full
pipeline on sample tickets (exactly for `direct`; within float rounding, with the same predicted
class, for `tfidf`). Any other shape, or any difference, uses the full pipeline, so an unusual
model is slower but never scored differently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from retrain.contracts.schema import TEXT

Scorer = Callable[[str], np.ndarray]  # one ticket text -> class probabilities (1-D, in `classes_` order)
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
    """Class probabilities of many tickets in one call of the reference path: per ticket, the
    DataFrame and ColumnTransformer overhead vanishes in a batch, so nothing needs compiling."""
    return pipeline.predict_proba(pd.DataFrame({TEXT: list(texts)}))


def _standard_parts(pipeline: Any) -> tuple[Any, list[Any], Any] | None:
    """(vectorizer, middle steps, classifier) of the standard shape, or None for any other shape."""
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


Features = tuple[np.ndarray, np.ndarray]  # one text's TF-IDF row as (sorted column indices, values)


def tfidf_features(vectorizer: TfidfVectorizer) -> Callable[[str], Features]:
    """`vectorizer.transform([text])` for one text: analyzer -> counts -> sublinear tf -> idf -> l2 norm."""
    analyze, vocabulary, dtype = vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.dtype
    idf = vectorizer.idf_.astype(dtype) if vectorizer.use_idf else None

    def features(text: str) -> Features:
        counts: dict[int, int] = {}
        for token in analyze(text):
            column = vocabulary.get(token)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        columns = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        data = np.fromiter((counts[c] for c in columns), dtype=dtype, count=len(columns))
        if vectorizer.sublinear_tf:
            np.log(data, data)
            data += 1
        if idf is not None:
            data *= idf[columns]
        if vectorizer.norm == "l2" and len(data):
            data /= np.sqrt(np.dot(data, data))
        return columns, data

    return features


def as_row(features: Features, width: int) -> sparse.csr_matrix:
    """The (1, width) sparse row the fitted classifier expects."""
    columns, data = features
    return sparse.csr_matrix((data, columns, np.array([0, len(columns)], dtype=np.int32)), shape=(1, width))


def _multinomial(final: Any) -> Callable[[Features], np.ndarray] | None:
    """Softmax of the linear scores for a multinomial LogisticRegression (what its predict_proba computes)."""
    multinomial = (type(final) is LogisticRegression and final.classes_.size > 2
                   and final.multi_class in ("auto", "multinomial")
                   and final.solver not in ("liblinear", "newton-cholesky"))
    if not multinomial:
        return None
    coef, intercept = np.ascontiguousarray(final.coef_.T), final.intercept_

    def probabilities(features: Features) -> np.ndarray:
        columns, data = features
        scores = data @ coef[columns] + intercept
        exp = np.exp(scores - scores.max())
        return exp / exp.sum()

    return probabilities


def tfidf_scorer(pipeline: Any) -> Scorer | None:
    """The TF-IDF row built by hand, then the fitted classifier; None unless a plain word/char TfidfVectorizer."""
    parts = _standard_parts(pipeline)
    if parts is None:
        return None
    vectorizer, middle, final = parts
    if type(vectorizer) is not TfidfVectorizer or vectorizer.binary or vectorizer.norm not in ("l2", None):
        return None
    features, width = tfidf_features(vectorizer), len(vectorizer.vocabulary_)
    direct = _multinomial(final) if not middle else None
    if direct is not None:
        return lambda text: direct(features(text))
    classify = _classify(middle, final)
    return lambda text: classify(as_row(features(text), width))


def _agrees(candidate: Scorer, reference: Scorer, samples: Sequence[str], exact: bool) -> bool:
    try:
        for text in samples:
            got, want = candidate(text), reference(text)
            same = np.array_equal(got, want) if exact else (
                np.allclose(got, want, **ROUNDING) and got.argmax() == want.argmax())
            if not same:
                return False
        return True
    except Exception:  # a shape we misjudged: the reference path is always right
        return False


def compile_scorer(pipeline: Any, samples: Sequence[str] = SAMPLES) -> tuple[Scorer, str]:
    """The fastest scorer that matches the full pipeline on `samples`, and its name for /ready."""
    reference = pipeline_scorer(pipeline)
    for build, name, exact in ((tfidf_scorer, TFIDF, False), (direct_scorer, DIRECT, True)):
        try:
            candidate = build(pipeline)
        except Exception:  # an attribute this scikit-learn lacks: the reference path is always right
            continue
        if candidate is not None and _agrees(candidate, reference, samples, exact):
            return candidate, name
    return reference, PIPELINE
