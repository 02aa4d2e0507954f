"""Offline scoring gives the pipeline's own answers, chunk boundaries or not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from load_test.simulate.generator import generate
from retrain.ml.batch_predict import CONFIDENCE, PREDICTED, PREDICTED_PRIORITY, PRIORITY_CONFIDENCE, predict_frame
from retrain.ml.evaluate import predict
from retrain.ml.features import baseline_pipeline
from tests.unit.router.router_testkit import fitted_two_head
from ticket_ab.pii import mask


def test_predict_frame_matches_the_pipeline_across_chunks_and_keeps_the_input_columns():
    train = generate("baseline", 400, seed=1)
    model = baseline_pipeline(seed=0).fit(train[["text"]], train["topic"])
    tickets = generate("new_product", 250, seed=2)[["ticket_id", "text"]]
    scored = predict_frame(model, tickets, chunk_rows=64, progress=False)
    assert list(scored.columns[:2]) == ["ticket_id", "text"]
    assert scored[PREDICTED].tolist() == predict(model, tickets).tolist()
    masked = pd.DataFrame({"text": tickets["text"].map(mask)})  # scored as the router scores: PII masked
    expected = model.predict_proba(masked).max(axis=1)
    np.testing.assert_allclose(scored[CONFIDENCE].to_numpy(), expected, atol=1e-4)


def test_predict_frame_of_an_empty_file_is_empty():
    train = generate("baseline", 200, seed=1)
    model = baseline_pipeline(seed=0).fit(train[["text"]], train["topic"])
    scored = predict_frame(model, pd.DataFrame({"text": pd.Series([], dtype=str)}), progress=False)
    assert len(scored) == 0 and {PREDICTED, CONFIDENCE} <= set(scored.columns)


def test_a_two_head_version_adds_each_tickets_priority_and_its_probability_across_chunks():
    model = fitted_two_head(seed=1, n=300, urgent_threshold=0.3)
    tickets = generate("new_product", 150, seed=2)[["ticket_id", "text"]]
    scored = predict_frame(model, tickets, chunk_rows=64, progress=False)
    masked = pd.DataFrame({"text": tickets["text"].map(mask)})
    assert scored[PREDICTED].tolist() == model.predict(masked).tolist()
    assert scored[PREDICTED_PRIORITY].tolist() == model.predict_priority(masked).tolist()  # the threshold applied
    _, chances = model.predict_both(masked)
    column = [list(model.priority_classes_).index(p) for p in scored[PREDICTED_PRIORITY]]
    np.testing.assert_allclose(scored[PRIORITY_CONFIDENCE].to_numpy(), chances[np.arange(len(column)), column],
                               atol=1e-4)


def test_a_one_head_version_leaves_the_priority_columns_blank():
    train = generate("baseline", 200, seed=1)
    model = baseline_pipeline(seed=0).fit(train[["text"]], train["topic"])
    scored = predict_frame(model, generate("baseline", 20, seed=2)[["text"]], progress=False)
    assert scored[PREDICTED_PRIORITY].isna().all() and scored[PRIORITY_CONFIDENCE].isna().all()
    assert scored[PREDICTED].notna().all()
