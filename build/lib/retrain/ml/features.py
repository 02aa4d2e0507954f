"""Text features and the served pipeline shape.

The registered model is always `Pipeline(features -> clf)` where `features` selects the `text`
column explicitly. A bare TfidfVectorizer fed a DataFrame iterates the column *names* and silently
returns one prediction for many rows, so the column is named here, once, for every model.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from retrain.contracts.schema import TEXT


def make_vectorizer() -> TfidfVectorizer:
    """Word 1-2 grams with sublinear tf: the strong, fast baseline for short tickets."""
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_df=0.9, dtype=np.float32)


def text_pipeline(estimator: BaseEstimator) -> Pipeline:
    """Wrap an estimator so it takes a DataFrame with a `text` column, as the router sends."""
    features = ColumnTransformer([("tfidf", make_vectorizer(), TEXT)], remainder="drop")
    return Pipeline([("features", features), ("clf", estimator)])


def baseline_pipeline(seed: int = 0) -> Pipeline:
    """TF-IDF + LogisticRegression: the bar every AutoML winner must meet."""
    return text_pipeline(LogisticRegression(C=10.0, max_iter=1000, random_state=seed))
