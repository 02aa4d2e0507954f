"""The accuracy story the demo tells, pinned with numbers.

A baseline model is good but not perfect on baseline tickets (ambiguity and vagueness are real),
loses clearly when a drift scenario arrives, and a model retrained on labelled tickets of the new
distribution gets back to the baseline level. If this story breaks, the drift DAG has nothing to
detect or nothing to win by retraining.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline

from load_test.simulate.generator import generate
from retrain.ml.features import baseline_pipeline

pytestmark = pytest.mark.slow  # fits models: `make test` runs it, `make check` does not
SHIFTS = ("new_product", "new_language")
MIN_DROP = 0.08
RECOVERY_SLACK = 0.03


def _accuracy(model: Pipeline, tickets: pd.DataFrame) -> float:
    return float(accuracy_score(tickets.topic, model.predict(tickets)))


@pytest.fixture(scope="module")
def baseline_model() -> Pipeline:
    train = generate("baseline", 4000, seed=1)
    return baseline_pipeline().fit(train, train.topic)


@pytest.fixture(scope="module")
def baseline_accuracy(baseline_model: Pipeline) -> float:
    return _accuracy(baseline_model, generate("baseline", 2000, seed=2))


@pytest.fixture(scope="module")
def shifted() -> dict[str, pd.DataFrame]:
    return {name: generate(name, 2000, seed=3) for name in SHIFTS}


def test_baseline_model_is_good_but_not_perfect_on_fresh_baseline_tickets(baseline_accuracy):
    assert 0.85 <= baseline_accuracy <= 0.96, f"baseline-on-baseline accuracy {baseline_accuracy:.3f}"


@pytest.mark.parametrize("scenario", SHIFTS)
def test_drift_costs_the_baseline_model_at_least_8_points(
    scenario, baseline_model, baseline_accuracy, shifted
):
    drifted = _accuracy(baseline_model, shifted[scenario])
    drop = baseline_accuracy - drifted
    assert drop >= MIN_DROP, (
        f"{scenario}: baseline model {baseline_accuracy:.3f} -> {drifted:.3f}, "
        f"a drop of {drop * 100:.1f} points (need >= {MIN_DROP * 100:.0f})"
    )


@pytest.mark.parametrize("scenario", SHIFTS)
def test_retraining_on_the_new_distribution_recovers_baseline_accuracy(scenario, baseline_accuracy, shifted):
    train = generate(scenario, 4000, seed=4)
    retrained = _accuracy(baseline_pipeline().fit(train, train.topic), shifted[scenario])
    assert retrained >= baseline_accuracy - RECOVERY_SLACK, (
        f"{scenario}: retrained model scores {retrained:.3f}, baseline-on-baseline {baseline_accuracy:.3f} "
        f"(allowed {RECOVERY_SLACK * 100:.0f} points below)"
    )
