"""A feedback correcting only the priority is accepted and reaches the next retrain's data, through the real
functions: the router's POST /feedback -> the feedback log -> the DAG's window (`collect_window`) -> relabelling and
the label store (`relabel_window`) -> the frame the train task hands to training (`train_challenger`; only
`train_and_register` itself is replaced, to catch that frame)."""

from __future__ import annotations

import pandas as pd
import pytest

from retrain.adapters import labelstore
from retrain.register import TrainOutcome
from retrain.tasks import collect, relabel
from retrain.tasks import train as train_task
from retrain.tasks.results import Checked
from router import create_app
from tests.unit.router.router_testkit import FEEDBACK_TOKEN, MemoryStore, fitted_pipeline, loaded, sample_tickets

AGENT = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


@pytest.fixture
def served(make_settings):
    """A router with a one-head champion (priority feedback is collected before the first two-head one), the
    settings of the DAG reading its logs right away, and 96 answered tickets: (settings, client, tickets)."""
    settings = make_settings(router={"feedback_token": FEEDBACK_TOKEN}, log={"settle_s": 0.0},
                             relabel={"min_gold": 20, "min_holdout": 5})
    champion = loaded(fitted_pipeline(seed=0), "champion", "1")
    client = create_app(settings, store=MemoryStore(champion, None, settings)).test_client()
    tickets = sample_tickets(per_topic=12, seed=3)
    tickets["request_id"] = [client.post("/predict", json={"text": text, "customer_id": f"c{i % 17}"}).get_json()[
        "request_id"] for i, text in enumerate(tickets["text"])]
    return settings, client, tickets


def _send(client, request_id: str, **fields: str) -> dict:
    response = client.post("/feedback", json={"request_id": request_id, **fields}, headers=AGENT)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_a_feedback_correcting_only_the_priority_reaches_the_frame_the_next_retrain_trains_on(served, monkeypatch):
    settings, client, tickets = served
    labelled = tickets.iloc[::2]  # every other ticket gets its topic from an agent
    for request_id, topic in zip(labelled["request_id"], labelled["topic"], strict=True):
        _send(client, request_id, label=topic)
    alone, corrected = tickets.iloc[1], labelled.iloc[0]  # never labelled / labelled, then its priority corrected
    assert _send(client, alone["request_id"], priority="urgent")["label"] is None
    _send(client, corrected["request_id"], priority="high")

    collected = collect.collect_window(settings, "manual__1")
    reference = sample_tickets(per_topic=10, seed=9)
    reference_path = collected.directory / "reference.parquet"
    reference.to_parquet(reference_path, index=False)
    checked = Checked(run_id="manual__1", retrain=True, status="drift", reasons=["test"],
                      reference_path=str(reference_path))
    relabelled = relabel.relabel_window(settings, collected, checked)
    caught = {}

    def train_and_register(data, settings, **kwargs) -> TrainOutcome:
        caught["data"], caught["holdout"] = data, kwargs["holdout"]
        return TrainOutcome(version="9", run_id="run-9", passed=False, alias=None, gate_reason="caught", winner="none",
                            metrics={}, champion_metrics=None)

    monkeypatch.setattr(train_task, "train_and_register", train_and_register)
    train_task.train_challenger(settings, collected, checked, relabelled, key="manual__1")

    window = pd.read_parquet(collected.window_path).set_index("request_id")
    assert collected.stats["labelled"] == len(labelled) and collected.stats["labelled_priority"] == 2
    assert window.loc[alone["request_id"], "label_priority"] == "urgent"
    assert pd.isna(window.loc[alone["request_id"], "label"])
    assert window.loc[corrected["request_id"], ["label", "label_priority"]].tolist() == [corrected["topic"], "high"]
    assert relabelled.stats["priority_only"] == 1
    assert alone["request_id"] not in set(pd.read_csv(relabelled.review_path)["request_id"])  # no pseudo-label asked
    stored = labelstore.load(labelstore.path_for(settings.data_dir)).set_index("request_id")
    assert stored.loc[alone["request_id"], ["origin", "status", "priority"]].tolist() == ["gold", "ok", "urgent"]
    assert pd.isna(stored.loc[alone["request_id"], "topic"])

    frame = pd.concat([caught["data"], caught["holdout"]], ignore_index=True)  # the corrected ticket may be held out
    assert list(caught["data"].columns) == ["text", "topic", "priority"]
    alone_rows = caught["data"].loc[caught["data"]["text"].eq(alone["text"]) & caught["data"]["priority"].notna()]
    assert alone_rows[["topic", "priority"]].astype(object).where(alone_rows.notna(), None).values.tolist() == [
        [None, "urgent"]]
    both = frame.loc[frame["priority"].eq("high") & frame["text"].eq(corrected["text"])]
    assert both["topic"].tolist() == [corrected["topic"]]  # the priority correction kept the topic label
