"""Alerts: one short message with its figures and link, sent without ever failing the caller or leaking a token."""

from __future__ import annotations

import logging
import socket

import apprise
import pytest

from ticket_ab import alerts
from ticket_ab.settings import AlertSettings

TOKEN = "123456789:AAH-secret-bot-token"
TELEGRAM = f"tgram://{TOKEN}/987654"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything logged at DEBUG and above, ours (which does not propagate) and Apprise's."""
    ours = logging.getLogger("ticket_ab")
    ours.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    yield caplog
    ours.removeHandler(caplog.handler)


def _alert(**overrides: object) -> alerts.Alert:
    fields = {"event": alerts.RAMPED, "title": "challenger v7 ramped to 25%",
              "figures": {"B - A": "+6.1 pt [+1.2, +11.0]", "labelled customers": "812"}}
    return alerts.Alert(**{**fields, **overrides})


def _alert_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ticket_ab.alerts"]


def test_format_gives_one_short_message_with_the_figures_in_order_and_the_link_last():
    title, body = alerts.format(_alert(link="http://mlflow:5000/#/models/m/versions/7"))
    assert title == "ticket-ab: challenger v7 ramped to 25%"
    assert body == "B - A +6.1 pt [+1.2, +11.0] · labelled customers 812\nhttp://mlflow:5000/#/models/m/versions/7"


def test_format_clips_long_figures_but_keeps_the_link_whole():
    link = "https://mlflow.example.com/#/models/ticket-classifier/versions/12"
    many = {f"signal {i}": "y" * 40 for i in range(30)}
    title, body = alerts.format(_alert(title="x" * 300, figures=many, link=link))
    assert len(title) <= alerts.TITLE_LIMIT and title.endswith("…")
    assert len(body) <= alerts.BODY_LIMIT and body.endswith("…\n" + link)


def test_an_alert_without_a_link_has_only_the_figures():
    assert alerts.format(_alert(figures={"window": "812 tickets"}))[1] == "window 812 tickets"


def test_an_unknown_event_is_refused_where_the_alert_is_made():
    with pytest.raises(ValueError, match="unknown alert event 'ramp'"):
        _alert(event="ramp")


def test_the_link_is_the_model_versions_page_on_an_http_server_without_its_credentials():
    assert alerts.model_link("http://127.0.0.1:5000/", "ticket classifier", "7") == (
        "http://127.0.0.1:5000/#/models/ticket%20classifier/versions/7")
    assert alerts.model_link("https://ops:pw@mlflow.example.com/mlflow", "m") == "https://mlflow.example.com/mlflow/#/models/m"
    assert alerts.model_link("https://mlflow.example.com", None) == "https://mlflow.example.com"
    assert alerts.model_link("sqlite:///var/mlflow/mlflow.db", "m", "7") is None
    assert alerts.model_link("", "m", "7") is None


def test_a_url_is_logged_by_its_scheme_only():
    assert alerts.masked(TELEGRAM) == "tgram://***"
    assert alerts.masked(" Slack://T1/B2/C3 ") == "slack://***"
    assert alerts.masked(TOKEN) == "***"


def test_send_without_urls_only_logs_the_alert_and_reports_it_undelivered(logs, monkeypatch):
    monkeypatch.setattr(apprise.Apprise, "notify", lambda *_a, **_k: pytest.fail("nothing to send to"))
    assert alerts.send(_alert(model="m", version="7"), AlertSettings(urls=""), base_link="http://mlflow:5000") is False
    [line] = _alert_lines(logs)
    assert line.startswith("alert event=ramped delivered=false targets=0 failed=0 invalid=none ")
    assert 'title="ticket-ab: challenger v7 ramped to 25%"' in line
    assert logs.records[-1].levelno == logging.INFO


def test_send_links_the_configured_base_before_the_tracking_server(alert_receiver):
    settings = AlertSettings(urls=alert_receiver.url, link="https://mlflow.example.com")
    assert alerts.send(_alert(model="m", version="7"), settings, base_link="http://10.0.0.5:5000") is True
    [posted] = alert_receiver.wait_for(lambda got: len(got) == 1)
    assert posted["message"].endswith("\nhttps://mlflow.example.com/#/models/m/versions/7")


def test_an_invalid_url_is_logged_by_its_scheme_and_the_valid_one_still_gets_the_alert(alert_receiver, logs):
    settings = AlertSettings(urls=f"tgram://not-a-token/, {alert_receiver.url}", timeout_s=5)
    assert alerts.send(_alert(), settings) is False  # not every target got it
    [posted] = alert_receiver.wait_for(lambda got: len(got) == 1)
    assert posted["title"] == "ticket-ab: challenger v7 ramped to 25%" and "B - A +6.1 pt" in posted["message"]
    [line] = _alert_lines(logs)
    assert "delivered=false targets=1 failed=0 invalid=tgram://*** " in line
    assert "not-a-token" not in logs.text


def test_send_never_logs_the_url_token(alert_receiver, logs):
    alert_receiver.status = 500
    secret_password = "pw-0123456789-secret"
    json_url = alert_receiver.url.replace("json://", f"json://user:{secret_password}@")
    settings = AlertSettings(urls=f"tgram://{TOKEN}!/987654, {json_url}", timeout_s=5)  # Apprise quotes a bad token
    assert alerts.send(_alert(), settings) is False
    alert_receiver.wait_for(lambda got: len(got) == 1)
    assert "tgram://***" in logs.text
    assert TOKEN not in logs.text and TOKEN.split(":")[1] not in logs.text and secret_password not in logs.text


def test_send_never_raises_and_names_only_the_error_type(alert_receiver, logs, monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"cannot reach {TELEGRAM}")

    monkeypatch.setattr(apprise.Apprise, "notify", broken)
    assert alerts.send(_alert(), AlertSettings(urls=alert_receiver.url)) is False
    [line] = _alert_lines(logs)
    assert "delivered=false" in line and "error=RuntimeError" in line
    assert logs.records[-1].levelno == logging.WARNING and TOKEN not in logs.text


def test_a_telegram_url_is_accepted_as_a_telegram_target_without_any_network(monkeypatch):
    def no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("accepting a URL must not connect anywhere")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    notifier = apprise.Apprise()
    assert notifier.add(TELEGRAM) is True
    [service] = list(notifier)
    assert service.service_name == "Telegram"
