"""Feedback from several integrations, each with its own token (TICKET_AB_FEEDBACK_TOKENS), as the A/B
verdict's source check needs to see it: in turn, from the environment, never from the command line."""

from __future__ import annotations

from collections import Counter

import pytest
from fake_router import FakeRouter

from load_test import client, testing, traffic

TOKENS = "desk-1:token-one, desk-2:token-two,mallory:token-three"


def test_planned_feedback_goes_out_in_turn_from_each_source_and_the_tickets_do_not_change():
    tickets = [{"text": f"ticket {i}", "topic": "email"} for i in range(200)]
    one = list(traffic.plan(tickets, n=200, seed=3, feedback_rate=0.5, label_noise=0.0))
    two = list(traffic.plan(tickets, n=200, seed=3, feedback_rate=0.5, label_noise=0.0, sources=["a", "b"]))
    assert [p.feedback_label for p in one] == [p.feedback_label for p in two]  # same draws, only the sender differs
    sent = [p.feedback_source for p in two if p.feedback_label is not None]
    assert sent[:4] == ["a", "b", "a", "b"] and abs(sent.count("a") - sent.count("b")) <= 1
    assert all(p.feedback_source is None for p in one)


def test_each_sources_feedback_carries_its_own_token():
    plans = traffic.plan(({"text": f"ticket {i}", "topic": "email"} for i in range(60)), n=60, seed=0,
                         feedback_rate=1.0, label_noise=0.0, sources=["desk-1", "desk-2"])
    tokens = testing.source_tokens(["desk-1", "desk-2"], TOKENS)
    with FakeRouter() as fake:
        run = client.run(fake.url, plans, concurrency=3, max_seconds=30, feedback_token="", feedback_tokens=tokens)
    assert len(run.results) == 60  # (the fake accepts only its own token: what counts is what was sent)
    assert Counter(auth for auth, _ in fake.feedback) == {"Bearer token-one": 30, "Bearer token-two": 30}


def test_a_source_without_a_token_in_the_environment_is_a_usage_error_that_shows_no_token():
    assert testing.source_tokens(["mallory"], TOKENS) == {"mallory": "token-three"}
    with pytest.raises(testing.UsageError) as refused:
        testing.source_tokens(["desk-1", "desk-9"], TOKENS)
    assert "'desk-9'" in str(refused.value) and "token-one" not in str(refused.value)
    assert testing.parse_args(["--feedback-sources", "desk-1, desk-2"]).feedback_sources == ["desk-1", "desk-2"]
