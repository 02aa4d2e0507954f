"""POST /feedback: the agent's true topic, guarded by its own token, validated against the champion."""

from __future__ import annotations

import pytest

from router import create_app
from tests.unit.router.router_testkit import ADMIN_TOKEN, FEEDBACK_TOKEN
from ticket_ab.requestlog import read_feedback


def feedback_rows(settings):
    read = read_feedback(settings.logs_dir)
    assert read.malformed == 0
    return read.rows


def test_feedback_is_accepted_with_202_and_appended_to_the_feedback_log(client, agent, settings):
    request_id = client.post("/predict", json={"text": "vpn drops"}).get_json()["request_id"]
    response = client.post("/feedback", json={"request_id": request_id, "label": "network"}, headers=agent)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "request_id": request_id, "label": "network",
                                   "priority": None, "source": "api"}
    rows = feedback_rows(settings)
    assert list(rows[["request_id", "label", "source"]].itertuples(index=False, name=None)) == [
        (request_id, "network", "api")]


def test_the_single_feedback_token_records_source_api_whatever_the_body_says(client, agent, settings):
    response = client.post("/feedback", json={"request_id": "r-1", "label": "billing", "source": "zendesk-sync"},
                           headers=agent)
    assert (response.status_code, response.get_json()["source"]) == (202, "api")
    assert feedback_rows(settings)["source"].tolist() == ["api"]


def test_each_integration_token_records_its_own_source_and_a_claimed_source_is_ignored(make_settings, store):
    settings = make_settings(router={"feedback_token": FEEDBACK_TOKEN,
                                     "feedback_tokens": "zendesk:zd-secret, jira:jira-secret"})
    client = create_app(settings, store=store).test_client()
    for token, claimed in (("zd-secret", "jira"), ("jira-secret", None), (FEEDBACK_TOKEN, "zendesk")):
        body = {"request_id": f"r-{token}", "label": "email", **({"source": claimed} if claimed else {})}
        assert client.post("/feedback", json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 202
    assert feedback_rows(settings)["source"].tolist() == ["zendesk", "jira", "api"]


@pytest.mark.parametrize("configured", ["zendesk", "zendesk:", ":token", "a:same,b:same"])
def test_a_malformed_token_list_is_503_naming_the_variable_not_an_open_door(make_settings, store, expect_error,
                                                                            configured):
    client = create_app(make_settings(router={"feedback_tokens": configured}), store=store).test_client()
    response = client.post("/feedback", json={"request_id": "r", "label": "email"},
                           headers={"Authorization": "Bearer same"})
    expect_error(response, 503, "misconfigured", "TICKET_AB_FEEDBACK_TOKENS")


def test_feedback_for_an_unknown_request_id_is_still_accepted(client, agent, settings):
    response = client.post("/feedback", json={"request_id": "never-served", "label": "email"}, headers=agent)
    assert response.status_code == 202
    assert feedback_rows(settings)["request_id"].tolist() == ["never-served"]


def test_feedback_with_an_unknown_label_is_422_listing_the_known_ones(client, agent, champion_model, expect_error):
    response = client.post("/feedback", json={"request_id": "r-1", "label": "vpn"}, headers=agent)
    body = expect_error(response, 422, "unknown_label", "'vpn'")
    assert all(topic in body["message"] for topic in champion_model.classes)


@pytest.mark.parametrize(("payload", "field"), [({"label": "email"}, "request_id"), ({"request_id": "r"}, "label"),
                                                ({"request_id": 5, "label": "email"}, "request_id"),
                                                ({"request_id": "r", "label": ""}, "label")])
def test_feedback_with_missing_or_invalid_fields_is_422_naming_the_field(client, agent, expect_error, payload, field):
    response = client.post("/feedback", json=payload, headers=agent)
    body = expect_error(response, 422, response.get_json()["error"], f"'{field}'")
    assert body["error"] in {"missing_field", "invalid_field"}


def test_feedback_needs_the_feedback_token_not_the_admin_token(client, expect_error):
    response = client.post("/feedback", json={"request_id": "r", "label": "email"},
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    body = expect_error(response, 401, "unauthorized")
    assert ADMIN_TOKEN not in body["message"]


def test_feedback_without_a_token_is_401_naming_the_variable(client, expect_error):
    response = client.post("/feedback", json={"request_id": "r", "label": "email"})
    expect_error(response, 401, "unauthorized", "TICKET_AB_FEEDBACK_TOKEN")


def test_feedback_refuses_with_403_when_no_feedback_token_is_configured(make_settings, store, expect_error):
    client = create_app(make_settings(router={"feedback_token": ""}), store=store).test_client()
    response = client.post("/feedback", json={"request_id": "r", "label": "email"},
                           headers={"Authorization": "Bearer x"})
    expect_error(response, 403, "forbidden", "TICKET_AB_FEEDBACK_TOKEN")


def test_feedback_without_champion_is_503(client, agent, store, expect_error):
    store.set(champion=None)
    expect_error(client.post("/feedback", json={"request_id": "r", "label": "email"}, headers=agent), 503,
                 "no_champion")


def test_feedback_bad_input_is_json_not_a_500(client, agent, expect_error):
    expect_error(client.post("/feedback", data="{", content_type="application/json", headers=agent), 400,
                 "invalid_json")
    expect_error(client.post("/feedback", data="x", content_type="text/plain", headers=agent), 415,
                 "unsupported_media_type")


def test_tokens_never_reach_the_logs(client, agent, settings, caplog):
    client.post("/predict", json={"text": f"my token is {FEEDBACK_TOKEN[:4]}"})
    client.post("/feedback", json={"request_id": "r", "label": "email"}, headers=agent)
    client.post("/feedback", json={"request_id": "r", "label": "email"}, headers={"Authorization": "Bearer wrong"})
    files = "".join(path.read_text() for path in settings.logs_dir.rglob("*.csv"))
    assert FEEDBACK_TOKEN not in files and ADMIN_TOKEN not in files
    assert FEEDBACK_TOKEN not in caplog.text and "wrong" not in caplog.text


def test_feedback_that_cannot_be_recorded_is_503_so_the_sender_retries(client, agent, settings, expect_error):
    settings.logs_dir.mkdir(parents=True)
    (settings.logs_dir / "feedback").write_text("a file where the feedback folder should be")
    response = client.post("/feedback", json={"request_id": "r", "label": "email"}, headers=agent)
    expect_error(response, 503, "log_unavailable", "feedback log not writable")
    assert response.headers["Retry-After"] == "60"
    (settings.logs_dir / "feedback").unlink()
    assert client.post("/feedback", json={"request_id": "r", "label": "email"}, headers=agent).status_code == 202
    assert feedback_rows(settings)["request_id"].tolist() == ["r"]
