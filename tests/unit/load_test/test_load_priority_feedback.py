"""The load test's agents may correct the priority too: a `priority_rate` share of the feedback carries the ticket's
true priority and a `priority_only` share of that sends it alone; by default the plan is the one it was before
priorities, draw for draw; the client sends what was planned."""

from __future__ import annotations

import pytest
from fake_router import TOKEN, FakeRouter

from load_test import client, testing, traffic
from load_test.simulate.generator import generate
from ticket_ab.schema import PRIORITIES


def _tickets(n: int, seed: int = 4) -> list[dict]:
    return generate("baseline", n, seed=seed).to_dict("records")


def _plan(tickets: list[dict], **kwargs) -> list[traffic.Planned]:
    return list(traffic.plan(tickets, n=len(tickets), seed=1, feedback_rate=0.4, label_noise=0.1, **kwargs))


def test_by_default_no_priority_is_planned_and_the_topic_feedback_is_unchanged_by_asking_for_priorities():
    tickets = _tickets(2000)
    plain, triaged = _plan(tickets), _plan(tickets, priority_rate=0.5, priority_only=0.0)
    assert all(p.feedback_priority is None for p in plain)
    assert [p.feedback_label for p in triaged] == [p.feedback_label for p in plain]  # priorities have their own draws
    assert [p.payload for p in triaged] == [p.payload for p in plain]


def test_priorities_come_at_the_feedback_rate_from_the_tickets_truth_and_some_alone():
    tickets = _tickets(4000)
    planned = _plan(tickets, priority_rate=1.0, priority_only=0.25)
    given = [(p, t) for p, t in zip(planned, tickets, strict=True) if p.feedback is not None]
    assert len(given) == pytest.approx(0.4 * len(tickets), rel=0.08)
    assert all(p.feedback_priority == t["priority"] for p, t in given)  # the true priority, every time
    alone = [p for p, _ in given if p.feedback_label is None]
    assert len(alone) / len(given) == pytest.approx(0.25, abs=0.04)
    assert all(p.feedback == {"priority": p.feedback_priority} for p in alone)
    assert {p.feedback_priority for p, _ in given} == set(PRIORITIES)


def test_tickets_without_a_priority_get_topic_feedback_only():
    tickets = [{"text": f"ticket {i}", "topic": "billing"} for i in range(200)]
    planned = _plan(tickets, priority_rate=1.0, priority_only=1.0)
    assert any(p.feedback for p in planned) and all(p.feedback in (None, {"label": p.feedback_label})
                                                    for p in planned)


def test_the_client_sends_the_planned_priority_with_or_without_the_label():
    tickets = _tickets(80)
    with FakeRouter() as fake:
        run = client.run(fake.url, iter(_plan(tickets, priority_rate=1.0, priority_only=0.5)), concurrency=2,
                         max_seconds=30, feedback_token=TOKEN)
    sent = [body for _, body in fake.feedback]
    assert len(sent) == sum(r.feedback_planned for r in run.results) > 0
    assert all(body["priority"] in PRIORITIES for body in sent)
    assert any("label" not in body for body in sent) and any("label" in body for body in sent)


def test_the_command_line_takes_the_priority_shares():
    args = testing.parse_args(["--priority-rate", "0.5", "--priority-only", "0.2"])
    assert (args.priority_rate, args.priority_only) == (0.5, 0.2)
    assert testing.parse_args([]).priority_rate == 0.0
