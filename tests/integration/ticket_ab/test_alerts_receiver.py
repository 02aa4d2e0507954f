"""Alerts through real Apprise to a real HTTP receiver: what arrives, and what a broken or silent chat costs."""

from __future__ import annotations

import time

from alert_receiver import AlertReceiver

from ticket_ab import alerts
from ticket_ab.settings import AlertSettings


def _registered() -> alerts.Alert:
    return alerts.Alert(alerts.REGISTERED, "challenger v7 registered",
                        {"model": "ticket-classifier", "accuracy": "91.2% vs champion v6 88.0%"},
                        model="ticket-classifier", version="7")


def test_an_alert_arrives_with_its_title_figures_link_and_type(alert_receiver):
    settings = AlertSettings(urls=alert_receiver.url)
    assert alerts.send(_registered(), settings, base_link="http://127.0.0.1:5000") is True
    [posted] = alert_receiver.wait_for(lambda got: len(got) == 1)
    assert posted["title"] == "ticket-ab: challenger v7 registered"
    assert posted["message"] == ("model ticket-classifier · accuracy 91.2% vs champion v6 88.0%\n"
                                 "http://127.0.0.1:5000/#/models/ticket-classifier/versions/7")
    assert posted["type"] == "info" and posted["version"] == "1.0"


def test_every_target_gets_the_alert_and_a_warning_arrives_as_one():
    with AlertReceiver() as first, AlertReceiver() as second:
        drift = alerts.Alert(alerts.DRIFT, "drift found", {"text drift": "AUC 0.91 (p=1e-12)"})
        assert alerts.send(drift, AlertSettings(urls=f"{first.url},{second.url}")) is True
        for receiver in (first, second):
            [posted] = receiver.wait_for(lambda got: len(got) == 1)
            assert posted["type"] == "warning" and posted["message"] == "text drift AUC 0.91 (p=1e-12)"


def test_a_receiver_answering_500_makes_send_return_false_without_raising(alert_receiver):
    alert_receiver.status = 500
    assert alerts.send(_registered(), AlertSettings(urls=alert_receiver.url)) is False
    alert_receiver.wait_for(lambda got: len(got) == 1)  # it was tried, and refused


def test_a_receiver_that_never_answers_is_given_up_after_timeout_s(taken_port):
    # `taken_port` listens and never accepts: the connection is made, the answer never comes.
    settings = AlertSettings(urls=f"json://127.0.0.1:{taken_port}/alerts", timeout_s=1.0)
    started = time.perf_counter()
    assert alerts.send(_registered(), settings) is False
    elapsed = time.perf_counter() - started
    assert 0.9 <= elapsed <= settings.timeout_s + 1.0, f"send took {elapsed:.2f} s"
