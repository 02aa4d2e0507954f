"""A version with a priority head, from data to tags: tickets may carry only a priority; the holdout scores both
heads; the tags, metrics, reference and trusted set carry the priority."""

import copy
import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from load_test.simulate.generator import generate
from retrain.ml.evaluate import priority_score, score, split_holdout
from retrain.ml.features import baseline_pipeline
from retrain.ml.priority import priority_scores
from retrain.ml.train import (
    Champion,
    fingerprint,
    judge,
    masked,
    run_metrics,
    select_and_fit,
    validate_training,
    version_tags,
    write_files,
)
from retrain.register import TrainOutcome
from retrain.tasks import train as tasks_train
from ticket_ab.schema import TicketDataError
from ticket_ab.settings import get_settings

pytestmark = pytest.mark.slow  # fits models: `make test` runs it, `make check` does not


@pytest.fixture(scope="module")
def tickets():
    data = generate("baseline", 500, 3)[["text", "topic", "priority", "customer_id"]]
    data.loc[:49, "topic"] = np.nan  # priority-only feedback
    data.loc[50:59, "priority"] = ""  # topic-only tickets
    return data


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return get_settings(home=tmp_path_factory.mktemp("train"), training={"automl_models": "nb", "automl_folds": 3},
                        relabel={"min_holdout": 30})


@pytest.fixture(scope="module")
def fitted(tickets, settings):
    data = masked(validate_training(tickets, "tickets"))
    return (data, *select_and_fit(data, None, 0.2, settings, lambda _: None))


def test_priority_only_tickets_are_valid_training_data_and_blank_priorities_unknown(tickets):
    data = validate_training(tickets, "tickets")
    assert data["topic"].isna().sum() == 50 and data["priority"].isna().sum() == 10
    assert set(data["priority"].dropna()) <= {"low", "medium", "high", "urgent"}


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.assign(priority=d["priority"].where(d.index != 3, "P1")), r"unknown priorities \['P1'\]"),
    (lambda d: d.assign(priority=d["priority"].where(d.index != 7, " ")), "1 tickets have neither 'topic' nor "
                                                                           "'priority' \\(rows 7\\)"),
    (lambda d: d.drop(columns="priority").assign(topic=d["topic"].fillna("")), "50 tickets have no 'topic'"),
    (lambda d: d.drop(columns="topic"), "missing column 'topic'"),
])
def test_training_data_problems_are_one_line_naming_them(tickets, change, message):
    with pytest.raises(TicketDataError, match=message):
        validate_training(change(tickets), "tickets")


def test_the_holdout_split_keeps_priority_only_tickets_on_both_sides(fitted, settings):
    data, train, holdout, _ = fitted
    assert train["topic"].isna().sum() == 40 and holdout["topic"].isna().sum() == 10
    assert len(train) + len(holdout) == len(data)
    again = split_holdout(data, 0.2, settings.seed)
    pd.testing.assert_frame_equal(again[1], holdout)


def test_fingerprint_hashes_the_priority_too_and_without_one_is_the_topic_hash(tickets):
    data = validate_training(tickets, "tickets")
    assert fingerprint(data) == fingerprint(data.sample(frac=1.0, random_state=4))
    changed = data.assign(priority=data["priority"].where(data.index != 0, "urgent" if data.loc[0, "priority"]
                                                          != "urgent" else "low"))
    assert fingerprint(changed) != fingerprint(data)
    topics = data.dropna(subset=["topic"])[["text", "topic"]]
    rows = pd.util.hash_pandas_object(topics.astype(str), index=False).sort_values()
    assert fingerprint(topics) == hashlib.sha256(rows.to_numpy().tobytes()).hexdigest()[:16]  # as before
    assert fingerprint(topics.assign(priority=np.nan)) == fingerprint(topics)  # the DAG's empty column too
    assert fingerprint(topics.assign(priority=" ")) == fingerprint(topics)


@pytest.fixture(scope="module")
def judged(fitted, settings):
    _, train, holdout, selection = fitted
    return judge(selection, train, holdout, None, settings, lambda _: None)


def test_the_holdout_scores_topics_on_topic_tickets_and_priorities_on_priority_tickets(fitted, judged):
    _, _, holdout, selection = fitted
    topics = holdout.dropna(subset=["topic"])
    assert judged.metrics == score(selection.pipeline, topics) and judged.metrics["n"] == len(topics)
    rows = holdout.dropna(subset=["priority"])
    expected = priority_scores(rows["priority"].to_numpy(), selection.pipeline.predict_priority(rows[["text"]]))
    assert judged.priority == expected.as_dict() and judged.priority["n"] == len(rows)


def test_tags_and_metrics_name_both_heads_and_the_holdout_priority_figures(fitted, judged):
    data = fitted[0]
    tags = version_tags(judged, data, "generated", None, None)
    assert tags["heads"] == "topic,priority" and tags["priority_winner"] == "nb"
    assert tags["priority_urgent_threshold"] == "argmax" and "priority_note" not in tags
    assert tags["holdout_priority_macro_f1"] == f"{judged.priority['macro_f1']:.4f}"
    assert tags["holdout_urgent_as_low"] == f"{judged.priority['urgent_as_low']:.4f}"
    assert tags["holdout_priority_cost"] == f"{judged.priority['cost']:.4f}"
    metrics = run_metrics(judged)
    assert metrics["holdout_priority_macro_f1"] == judged.priority["macro_f1"]
    assert metrics["priority_cv_macro_f1"] == judged.selection.priority_cv_macro_f1


def test_the_urgent_threshold_is_tagged_in_full_so_the_tag_decides_as_the_model_does(judged, fitted):
    model = copy.copy(judged.selection.pipeline)
    model.urgent_threshold = 1 / 3
    candidate = dataclasses.replace(judged, selection=dataclasses.replace(judged.selection, pipeline=model))
    tags = version_tags(candidate, fitted[0], "generated", None, None)
    assert float(tags["priority_urgent_threshold"]) == model.urgent_threshold


def test_the_reference_and_trusted_set_carry_the_priority(judged, settings, tmp_path):
    written = write_files(judged, settings, tmp_path)
    reference = pd.read_parquet(written["reference"])
    assert {"priority", "predicted", "predicted_priority"} <= set(reference.columns)
    assert set(reference["predicted_priority"]) <= {"low", "medium", "high", "urgent"}
    trusted = pd.read_parquet(written["trusted"])
    assert list(trusted.columns) == ["text", "topic", "priority"] and trusted["topic"].notna().all()
    assert (tmp_path / "automl" / "priority_leaderboard.csv").exists()


def test_a_one_head_champion_is_judged_on_topics_and_the_gate_reports_the_priority(fitted, settings):
    _, train, holdout, selection = fitted
    topics = train.dropna(subset=["topic"])
    old = baseline_pipeline().fit(topics[["text"]], topics["topic"])  # an older one-head version
    trusted = holdout.dropna(subset=["topic"])[["text", "topic"]]
    candidate = judge(selection, train, holdout, Champion("1", old, trusted, "v1 trusted set"), settings,
                      lambda _: None)
    assert candidate.champion_priority is None and priority_score(old, holdout) is None
    assert "(reported: the champion has no priority head)" in candidate.gate.reason
    assert candidate.champion_metrics["n"] == len(trusted)


@pytest.fixture(scope="module")
def topic_only(fitted, settings):
    _, train, holdout, _ = fitted
    return select_and_fit(train.drop(columns="priority").dropna(subset=["topic"]), holdout, 0.2, settings,
                          lambda _: None)[2]


def test_a_candidate_whose_data_cannot_train_a_priority_head_is_reported_against_a_two_head_champion(
        fitted, settings, topic_only):
    _, train, holdout, selection = fitted
    trusted = holdout.dropna(subset=["topic"])[["text", "topic"]]
    champion = Champion("2", selection.pipeline, trusted, "v2 trusted set")
    candidate = judge(topic_only, train, holdout, champion, settings, lambda _: None)
    assert not topic_only.priority_trainable and selection.priority_trainable
    assert "priority cannot be judged: the challenger has no priority head" in candidate.gate.reason
    assert candidate.gate.details["priority"]["failures"] == []
    tags = version_tags(candidate, train, "x", None, None)
    assert tags["heads"] == "topic" and tags["priority_note"] == "the training data has no 'priority' column"


def test_a_candidate_that_lost_a_head_its_data_could_train_fails_against_a_two_head_champion(
        fitted, settings, topic_only):
    _, train, holdout, selection = fitted
    trusted = holdout.dropna(subset=["topic"])[["text", "topic"]]
    lost = dataclasses.replace(topic_only, priority_trainable=True)  # as when the priority selection fails
    candidate = judge(lost, train, holdout, Champion("2", selection.pipeline, trusted, "v2"), settings,
                      lambda _: None)
    assert not candidate.gate.passed
    assert "no priority head (the training data has no 'priority' column) although its training data could train" \
        in candidate.gate.reason


def test_the_gate_clusters_urgent_tickets_by_their_customers(fitted, tmp_path):
    _, train, holdout, selection = fitted
    settings = get_settings(home=tmp_path, training={"automl_models": "nb", "gate_urgent_min_rows": 1},
                            relabel={"min_holdout": 30})
    urgent = holdout["priority"] == "urgent"
    two = holdout.assign(customer_id=holdout["customer_id"].where(~urgent, np.where(np.arange(len(holdout)) % 2,
                                                                                    "C-odd", "C-even")))
    champion = Champion("2", selection.pipeline, holdout.dropna(subset=["topic"])[["text", "topic"]], "v2")
    candidate = judge(selection, train, two, champion, settings, lambda _: None)
    gain = candidate.gate.details["priority"]["urgent_as_low_gain"]
    assert gain["n"] == int(urgent.sum()) > 2 and gain["clusters"] == two.loc[urgent, "customer_id"].nunique() == 2


def test_a_holdout_without_priorities_leaves_the_priority_unjudged(fitted, settings):
    _, train, holdout, selection = fitted
    topics_only = holdout.assign(priority=np.nan)  # the window's gold before any priority feedback
    candidate = judge(selection, train, topics_only, None, settings, lambda _: None)
    assert candidate.priority["n"] == 0 and np.isnan(candidate.priority["macro_f1"])
    champion = Champion("1", selection.pipeline, topics_only.dropna(subset=["topic"])[["text", "topic"]], "v1")
    judged = judge(selection, train, topics_only, champion, settings, lambda _: None)
    assert "priority cannot be judged: 0 held-out tickets with a priority" in judged.gate.reason
    assert "holdout_priority_macro_f1" not in run_metrics(judged)


def test_a_trained_result_with_unmeasured_figures_travels_as_strict_json():
    # XCom is strict JSON: the priority figures of a holdout without priorities are NaN and must travel as null.
    outcome = TrainOutcome(version="2", run_id="r", winner="nb", passed=True, gate_reason="ok", alias="challenger",
                           metrics={"accuracy": 0.9, "priority_macro_f1": float("nan")}, champion_metrics=None,
                           gate={"priority": {"macro_f1": np.float64("nan"), "rows": [1.0, float("inf")]}})
    trained = tasks_train._trained(outcome, "k", train_rows=10, holdout_rows=5, store_fingerprint="f")
    payload = json.loads(json.dumps(dataclasses.asdict(trained), allow_nan=False))
    assert payload["metrics"] == {"accuracy": 0.9, "priority_macro_f1": None}
    assert payload["gate"] == {"priority": {"macro_f1": None, "rows": [1.0, None]}}
