"""The logged `champion_confidence`: the champion's top-class probability on every ticket the router answers, the
A/B report's CUPAC covariate, scored by the champion itself on challenger-served requests only when
TICKET_AB_LOG_CHAMPION_CONFIDENCE is on, and never at the cost of an answer."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from prometheus_client import REGISTRY

from router import create_app
from router.models import LoadedModel
from router.scoring import Outcome, Prediction
from tests.unit.router.router_testkit import Exploding, MemoryStore, loaded
from ticket_ab.names import CHALLENGER, CHAMPION, A, B
from ticket_ab.pii import mask
from ticket_ab.requestlog import read_requests

VPN = "vpn drops every hour and the wifi is slow, call +7 912 345-67-89"
TICKETS = [{"text": VPN, "customer_id": f"c-{i}"} for i in range(12)] + [
    {"text": "invoice charged twice, please refund", "customer_id": f"d-{i}"} for i in range(12)]
FAILURES = "ticket_ab_champion_score_failures_total"


def own_score(model: LoadedModel, text: str) -> float:
    """The model's top-class probability of the text as logged (masked), from its pipeline's own predict_proba."""
    return float(model.pipeline.predict_proba(pd.DataFrame({"text": [mask(text)]}))[0].max())


@pytest.fixture
def router_with(make_settings, champion_model, challenger_model):
    """A test client and the settings of a router with the setting on or off, at the split given, its champion
    replaceable (`champion=`)."""
    apps = []

    def make(log_champion: bool, split_b: float, mode: str = "split", champion: LoadedModel | None = None):
        settings = make_settings(router={"split_b": split_b, "log_champion_confidence": log_champion},
                                 rollout={"start": "configured"})
        app = create_app(settings, store=MemoryStore(champion or champion_model, challenger_model, settings))
        app.extensions["ticket_ab"].config.update(ab_split_b=split_b, mode=mode, updated_by="test")
        apps.append(app)
        return app.test_client(), settings

    yield make
    for app in apps:
        app.extensions["ticket_ab"].requests.close()
        app.extensions["ticket_ab"].feedback.close()


def logged(settings) -> pd.DataFrame:
    read = read_requests(settings.logs_dir)
    assert read.malformed == 0
    return read.rows


def test_the_setting_is_on_unless_switched_off(make_settings):
    assert make_settings().router.log_champion_confidence is True


@pytest.mark.parametrize("log_champion", [True, False])
def test_a_champion_answer_logs_its_own_confidence_whatever_the_setting(router_with, champion_model, log_champion):
    client, settings = router_with(log_champion, split_b=0.0)
    body = client.post("/predict", json={"text": VPN}).get_json()
    row = logged(settings).iloc[-1]
    assert (body["variant"], body["model_alias"]) == (A, CHAMPION)
    assert row["champion_confidence"] == pytest.approx(body["confidence"]) == pytest.approx(row["confidence"])
    assert row["champion_confidence"] == pytest.approx(own_score(champion_model, VPN), abs=1e-5)


def test_a_challenger_answer_logs_the_champions_own_score_of_its_text_when_on(router_with, champion_model,
                                                                              challenger_model):
    client, settings = router_with(True, split_b=1.0)
    body = client.post("/predict", json={"text": VPN}).get_json()
    row = logged(settings).iloc[-1]
    assert (body["variant"], body["model_alias"], row["model_alias"]) == (B, CHALLENGER, CHALLENGER)
    assert row["confidence"] == pytest.approx(own_score(challenger_model, VPN), abs=1e-5)
    assert row["champion_confidence"] == pytest.approx(own_score(champion_model, VPN), abs=1e-5)
    assert row["champion_confidence"] != pytest.approx(row["confidence"], abs=1e-5)  # the two models do differ


def test_a_challenger_answer_leaves_it_blank_when_off(router_with):
    client, settings = router_with(False, split_b=1.0)
    assert client.post("/predict", json={"text": VPN}).get_json()["variant"] == B
    row = logged(settings).iloc[-1]
    assert pd.isna(row["champion_confidence"]) and 0 < row["confidence"] <= 1


def test_every_ticket_of_a_mixed_batch_logs_the_champions_own_score(router_with, champion_model):
    client, settings = router_with(True, split_b=0.5)
    results = client.post("/predict", json={"tickets": TICKETS}).get_json()["results"]
    rows = logged(settings).set_index("request_id").loc[[r["request_id"] for r in results]]
    assert set(rows["variant"]) == {A, B}
    want = champion_model.pipeline.predict_proba(pd.DataFrame({"text": rows["text"]})).max(axis=1)
    assert rows["champion_confidence"].to_numpy() == pytest.approx(want, abs=1e-5)


def test_a_batch_with_the_setting_off_fills_only_the_champions_rows(router_with):
    client, settings = router_with(False, split_b=0.5)
    client.post("/predict", json={"tickets": TICKETS})
    rows = logged(settings)
    assert rows.loc[rows["variant"] == A, "champion_confidence"].notna().all()
    assert rows.loc[rows["variant"] == B, "champion_confidence"].isna().all()


def test_shadow_mode_logs_the_champions_side_not_the_shadows(router_with, champion_model):
    client, settings = router_with(False, split_b=1.0, mode="shadow")  # no extra scoring needed in shadow mode
    client.post("/predict", json={"text": VPN})
    row = logged(settings).iloc[-1]
    assert (row["mode"], row["model_alias"], row["shadow_version"]) == ("shadow", CHAMPION, "2")
    assert row["champion_confidence"] == pytest.approx(own_score(champion_model, VPN), abs=1e-5)
    assert row["champion_confidence"] != pytest.approx(row["shadow_confidence"], abs=1e-5)


def test_the_champions_confidence_is_taken_from_whichever_prediction_is_the_champions():
    champion = Prediction(CHAMPION, "1", "network", 0.81, {"network": 0.81})
    challenger = Prediction(CHALLENGER, "2", "network", 0.64, {"network": 0.64})
    assert Outcome(A, champion, shadow=challenger).champion_confidence == 0.81
    assert Outcome(A, challenger, shadow=champion).champion_confidence == 0.81
    assert Outcome(B, challenger, champion=champion).champion_confidence == 0.81
    assert Outcome(B, challenger).champion_confidence is None


def test_a_failed_challenger_falls_back_to_the_champion_whose_confidence_is_logged(router_with, champion_model,
                                                                                    exploding_challenger):
    client, settings = router_with(False, split_b=1.0)
    client.application.extensions["ticket_ab"].store.set(challenger=exploding_challenger)
    body = client.post("/predict", json={"text": VPN}).get_json()
    row = logged(settings).iloc[-1]
    assert (body["model_alias"], row["fallback"]) == (CHAMPION, "challenger_error:RuntimeError")
    assert row["champion_confidence"] == pytest.approx(body["confidence"])


def test_a_failing_champion_score_leaves_it_blank_counted_and_logged_and_the_answer_intact(router_with, caplog,
                                                                                          challenger_model):
    broken = loaded(Exploding(challenger_model.classes), CHAMPION, "1")
    client, settings = router_with(True, split_b=1.0, champion=broken)
    before = REGISTRY.get_sample_value(FAILURES) or 0.0
    with caplog.at_level(logging.WARNING):
        response = client.post("/predict", json={"tickets": TICKETS[:3]})
        single = client.post("/predict", json={"text": VPN})
    assert response.status_code == single.status_code == 200
    answers = [*response.get_json()["results"], single.get_json()]
    assert {(a["variant"], a["model_alias"], a["topic"]) for a in answers} == {(B, CHALLENGER, "network")}
    rows = logged(settings)
    assert len(rows) == 4 and rows["champion_confidence"].isna().all() and rows["fallback"].eq("").all()
    assert rows["confidence"].to_numpy() == pytest.approx([a["confidence"] for a in answers])
    assert REGISTRY.get_sample_value(FAILURES) == before + 4
    failures = [r for r in caplog.records if r.getMessage().startswith("champion_confidence_failed")]
    assert len(failures) == 4 and all("\n" not in r.getMessage() and "exploded" in r.getMessage() for r in failures)
