"""Score one ticket with a registered pipeline, skipping DataFrame plumbing when that is provably equivalent.

Registered models are `Pipeline(features=ColumnTransformer([(name, vectorizer, "text")]), ..., clf)`
(see retrain.ml.features). For a single ticket about half of `predict_proba`'s time is wrapper work:
a one-row DataFrame, ColumnTransformer's column selection and feature-name checks, a joblib
Parallel around one transformer. When a pipeline has exactly that shape, the router calls the same
fitted steps on `[text]` directly, and only after checking at load time that this gives the same
probabilities as the full pipeline on sample tickets. Any other shape, or any difference, uses the
full pipeline, so an unusual model is slower but never scored differently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from retrain.contracts.schema import TEXT

Scorer = Callable[[str], np.ndarray]  # one ticket text -> class probabilities (1-D, in `classes_` order)
DIRECT = "direct"
PIPELINE = "pipeline"
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


def direct_scorer(pipeline: Any) -> Scorer | None:
    """The same fitted steps without the DataFrame wrapper, or None if the shape is not the standard one."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        return None
    features = pipeline.steps[0][1]
    if not isinstance(features, ColumnTransformer) or not getattr(features, "sparse_output_", False):
        return None
    active = [(transformer, column) for _, transformer, column in features.transformers_
              if not (isinstance(transformer, str) and transformer == "drop")]
    if len(active) != 1 or active[0][1] != TEXT or isinstance(active[0][0], str):
        return None
    vectorizer = active[0][0]
    middle = [step for _, step in pipeline.steps[1:-1] if not (isinstance(step, str) or step is None)]
    final = pipeline.steps[-1][1]

    def score(text: str) -> np.ndarray:
        matrix = vectorizer.transform([text])
        for step in middle:
            matrix = step.transform(matrix)
        return final.predict_proba(matrix)[0]

    return score


def compile_scorer(pipeline: Any, samples: Sequence[str] = SAMPLES) -> tuple[Scorer, str]:
    """The fastest scorer that matches the full pipeline on `samples`, and its name for /ready."""
    reference = pipeline_scorer(pipeline)
    direct = direct_scorer(pipeline)
    if direct is not None:
        try:
            if all(np.array_equal(direct(text), reference(text)) for text in samples):
                return direct, DIRECT
        except Exception:  # a shape we misjudged: the reference path is always right
            return reference, PIPELINE
    return reference, PIPELINE
