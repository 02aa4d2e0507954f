"""One ticket's TF-IDF row built straight from fitted vectorizers, without scikit-learn's per-call plumbing.

`TfidfVectorizer.transform([text])` validates its input, builds a sparse count matrix, converts
and normalizes it as a matrix; for one short text that bookkeeping costs far more than the
arithmetic. Here the fitted analyzer, vocabulary and idf give the same row (the arithmetic of
TfidfTransformer, in the vectorizer's dtype) as (column indices, values). A FeatureUnion of such
vectorizers (the word + character n-grams of retrain.ml.features) is their rows side by side, each
shifted by the widths before it and scaled by its transformer weight, as FeatureUnion stacks them.
Only plain TfidfVectorizers are built by hand; anything else returns None and is scored by the
fitted steps themselves (see router.predictor).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

Features = tuple[np.ndarray, np.ndarray]  # one text's feature row as (sorted column indices, values)
TextFeatures = Callable[[str], Features]


def plain_tfidf(vectorizer: Any) -> bool:
    """A TfidfVectorizer whose row `tfidf_features` reproduces (binary counts and l1 norms are not built)."""
    return type(vectorizer) is TfidfVectorizer and not vectorizer.binary and vectorizer.norm in ("l2", None)


def tfidf_features(vectorizer: TfidfVectorizer) -> TextFeatures:
    """`vectorizer.transform([text])` for one text: analyzer -> counts -> sublinear tf -> idf -> l2 norm."""
    analyze, vocabulary, dtype = vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.dtype
    idf = vectorizer.idf_.astype(dtype) if vectorizer.use_idf else None

    def features(text: str) -> Features:
        # Counter counts in C (character grams repeat a lot); unknown tokens are dropped, as transform does
        counts = {column: n for token, n in Counter(analyze(text)).items()
                  if (column := vocabulary.get(token)) is not None}
        columns = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
        data = np.fromiter(counts.values(), dtype=dtype, count=len(counts))
        order = columns.argsort()  # sorted in numpy: looking counts up by numpy scalars costs 10x more
        columns, data = columns[order], data[order]
        if vectorizer.sublinear_tf:
            np.log(data, data)
            data += 1
        if idf is not None:
            data *= idf[columns]
        if vectorizer.norm == "l2" and len(data):
            data /= np.sqrt(np.dot(data, data))
        return columns, data

    return features


def union_features(union: FeatureUnion) -> tuple[TextFeatures, int] | None:
    """The stacked row of a FeatureUnion of plain TfidfVectorizers and its width, or None for any other union."""
    vectorizers = union.transformer_list
    if not vectorizers or not all(plain_tfidf(step) for _, step in vectorizers):
        return None
    weights = union.transformer_weights or {}
    parts, width = [], 0
    for name, vectorizer in vectorizers:
        parts.append((tfidf_features(vectorizer), width, weights.get(name)))
        width += len(vectorizer.vocabulary_)

    def features(text: str) -> Features:
        columns, values = [], []
        for part, offset, weight in parts:
            part_columns, part_values = part(text)
            columns.append(part_columns + offset)
            values.append(part_values if weight is None else part_values * weight)
        return np.concatenate(columns), np.concatenate(values)

    return features, width


def text_features(transformer: Any) -> tuple[TextFeatures, int] | None:
    """The hand-built row of one TfidfVectorizer or a union of them, with its width; None for anything else."""
    if plain_tfidf(transformer):
        return tfidf_features(transformer), len(transformer.vocabulary_)
    if type(transformer) is FeatureUnion:
        return union_features(transformer)
    return None


def as_row(features: Features, width: int) -> sparse.csr_matrix:
    """The (1, width) sparse row the fitted classifier expects."""
    columns, data = features
    return sparse.csr_matrix((data, columns, np.array([0, len(columns)], dtype=np.int32)), shape=(1, width))
