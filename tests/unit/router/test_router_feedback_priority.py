"""POST /feedback with a `priority`: as well as or instead of the topic, checked against the priorities the champion
knows (the schema's for a one-head champion), logged blank where not sent; and the priority columns of the request
log, filled from each answer's priority head and blank for a one-head version."""

from __future__ import annotations

from dataclasses import replace

import pytest

from router import create_app
from router.config import ABConfig
from router.contract import Ticket
from router.records import request_row
from router.scoring import Outcome, Prediction
from tests.unit.router.router_testkit import MemoryStore
from ticket_ab.requestlog import NUMERIC, REQUEST_COLUMNS, read_feedback, read_requests
from ticket_ab.schema import PRIORITIES


def _logged(settings) -> list[tuple[str, str, str, str]]:
    read = read_feedback(settings.logs_dir)
    assert read.malformed == 0
    return list(read.rows[["request_id", "label", "priority", "source"]].itertuples(index=False, name=None))


def test_a_priority_alone_is_accepted_and_logged_with_a_blank_label(client, agent, settings):
    request_id = client.post("/predict", json={"text": "vpn drops"}).get_json()["request_id"]
    response = client.post("/feedback", json={"request_id": request_id, "priority": "urgent"}, headers=agent)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "request_id": request_id, "label": None,
                                   "priority": "urgent", "source": "api"}
    assert _logged(settings) == [(request_id, "", "urgent", "api")]


def test_a_label_and_a_priority_are_one_row(client, agent, settings):
    response = client.post("/feedback", json={"request_id": "r-1", "label": "network", "priority": " high "},
                           headers=agent)
    assert (response.status_code, response.get_json()["priority"]) == (202, "high")
    assert _logged(settings) == [("r-1", "network", "high", "api")]


@pytest.mark.parametrize("payload", [{"request_id": "r"}, {"request_id": "r", "label": None, "priority": None}])
def test_feedback_with_neither_label_nor_priority_is_422_naming_both(client, agent, settings, expect_error,
                                                                     payload):
    expect_error(client.post("/feedback", json=payload, headers=agent), 422, "missing_field", "'label'", "'priority'")
    assert _logged(settings) == []


def test_an_unknown_priority_for_a_one_head_champion_is_422_listing_the_schemas(client, agent, settings, champion_model,
                                                                                expect_error):
    assert not champion_model.priority_classes
    body = expect_error(client.post("/feedback", json={"request_id": "r-1", "priority": "asap"}, headers=agent),
                        422, "unknown_priority", "'asap'")
    assert all(priority in body["message"] for priority in PRIORITIES)
    assert _logged(settings) == []


def test_a_priority_the_champion_never_learned_is_accepted_so_feedback_can_teach_it(settings, champion_model, agent,
                                                                                     expect_error):
    champion = replace(champion_model, priority_classes=("low", "high"))
    client = create_app(settings, store=MemoryStore(champion, None, settings)).test_client()
    assert client.post("/feedback", json={"request_id": "r-1", "priority": "urgent"}, headers=agent).status_code == 202
    expect_error(client.post("/feedback", json={"request_id": "r-1", "priority": "critical"}, headers=agent),
                 422, "unknown_priority", "'critical'", ", ".join(PRIORITIES))


def test_an_unknown_label_is_refused_even_beside_a_known_priority(client, agent, settings, expect_error):
    expect_error(client.post("/feedback", json={"request_id": "r-1", "label": "vpn", "priority": "low"},
                             headers=agent), 422, "unknown_label", "'vpn'")
    assert _logged(settings) == []


def _prediction(alias: str, priority: str | None, confidence: float | None) -> Prediction:
    return Prediction(alias, "3", "network", 0.9, {"network": 0.9, "email": 0.1}, priority=priority,
                      priority_confidence=confidence,
                      priority_scores=None if priority is None else {priority: confidence})


def test_the_request_row_carries_the_served_and_shadow_priorities_and_blanks_a_one_head_version():
    config, ticket = ABConfig(0.5), Ticket(text="vpn drops")
    two_heads = Outcome("A", _prediction("champion", "urgent", 0.812345), shadow=_prediction("challenger", "low", 0.5))
    one_head = Outcome("A", _prediction("champion", None, None), shadow=_prediction("challenger", None, None))
    rows = [request_row("r", ticket, "vpn drops", outcome, config, 1.0, b"k", "anonymous")
            for outcome in (two_heads, one_head)]
    assert {"priority", "priority_confidence", "shadow_priority"} <= set(REQUEST_COLUMNS) and set(rows[0]) == set(
        REQUEST_COLUMNS)
    assert "priority_confidence" in NUMERIC
    assert [(r["priority"], r["priority_confidence"], r["shadow_priority"]) for r in rows] == [
        ("urgent", 0.812345, "low"), ("", "", "")]


def test_a_one_head_version_serving_logs_blank_priority_columns(client, admin, settings, champion_model,
                                                              challenger_model):
    assert not champion_model.priority_classes and not challenger_model.priority_classes
    assert client.post("/config", json={"mode": "shadow"}, headers=admin).status_code == 200
    client.post("/predict", json={"text": "vpn drops", "customer_id": "c-1"})
    rows = read_requests(settings.logs_dir).rows
    assert len(rows) == 1 and rows["topic"].iloc[0] != "" and rows["shadow_version"].iloc[0] != ""
    assert rows[["priority", "shadow_priority"]].values.tolist() == [["", ""]]
    assert rows["priority_confidence"].isna().all()
