"""What the load test plans to send: customers, feedback sampling and agents' label noise."""

import random
from collections import Counter
from itertools import islice

import pandas as pd
import pytest

from load_test import traffic
from ticket_ab.schema import TOPICS, TicketDataError


def tickets(n: int) -> list[dict]:
    return [{"text": f"ticket {i}", "ticket_id": f"T-{i}", "topic": TOPICS[i % len(TOPICS)]} for i in range(n)]


def test_customer_pool_is_skewed_like_real_accounts():
    pool = traffic.CustomerPool(size=500, seed=3)
    draws = Counter(pool.draw() for _ in range(20_000))
    top10 = sum(count for _, count in draws.most_common(10))
    assert top10 / 20_000 > 0.4  # 2% of the customers file 40%+ of the tickets
    assert len(draws) > 150  # ...and a long tail still shows up
    assert set(draws) <= set(pool.ids) and pool.ids[0] == "C-00001"


def test_customer_pool_is_seeded():
    def draws(seed: int) -> list[str]:
        pool = traffic.CustomerPool(100, seed=seed)
        return [pool.draw() for _ in range(50)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    with pytest.raises(ValueError):
        traffic.CustomerPool(0)


def test_noisy_label_flips_at_the_requested_rate_to_another_known_topic():
    rng = random.Random(0)
    labels = [traffic.noisy_label("billing", TOPICS, 0.05, rng) for _ in range(20_000)]
    flipped = [label for label in labels if label != "billing"]
    assert len(flipped) / 20_000 == pytest.approx(0.05, abs=0.006)
    assert set(flipped) <= set(TOPICS) - {"billing"}
    assert all(traffic.noisy_label("email", TOPICS, 0.0, rng) == "email" for _ in range(1000))
    assert traffic.noisy_label("email", ["email"], 1.0, rng) == "email"  # nothing else to confuse it with


def test_plan_sends_feedback_for_the_requested_share_with_label_noise():
    planned = list(traffic.plan(tickets(5000), n=5000, seed=1, feedback_rate=0.3, label_noise=0.1))
    with_feedback = [p for p in planned if p.feedback_label is not None]
    assert len(planned) == 5000
    assert len(with_feedback) / 5000 == pytest.approx(0.3, abs=0.026)  # 4 binomial sd
    wrong = sum(p.feedback_label != p.true_topic for p in with_feedback)
    assert wrong / len(with_feedback) == pytest.approx(0.1, abs=0.022)


def test_plan_stops_at_n_and_keeps_the_tickets_when_the_feedback_settings_change():
    few = list(traffic.plan(tickets(100), n=10, seed=1, feedback_rate=0.0, label_noise=0.0))
    many = list(traffic.plan(tickets(100), n=10, seed=1, feedback_rate=1.0, label_noise=0.5))
    assert len(few) == 10 and [p.payload for p in few] == [p.payload for p in many]
    assert all(p.feedback_label is None for p in few) and all(p.feedback_label for p in many)


def test_plan_fills_missing_customers_from_the_pool_and_skips_feedback_without_truth():
    rows = [{"text": "printer jammed", "customer_id": ""}, {"text": "vpn down", "customer_id": 42}]
    planned = list(traffic.plan(rows, n=2, seed=0, feedback_rate=1.0, label_noise=0.0,
                                customers=traffic.CustomerPool(10, seed=0)))
    assert planned[0].payload["customer_id"].startswith("C-")
    assert planned[1].payload == {"text": "vpn down", "customer_id": "42"}
    assert all(p.feedback_label is None and p.true_topic is None for p in planned)


def test_generated_tickets_carry_ids_customers_and_noise_free_truth():
    planned = list(traffic.plan(traffic.generated("new_product", seed=4, customers=50), n=200, seed=4,
                                feedback_rate=1.0, label_noise=0.0))
    assert all(set(p.payload) == {"text", "ticket_id", "customer_id"} for p in planned)
    assert all(p.feedback_label == p.true_topic for p in planned)
    assert len({p.payload["customer_id"] for p in planned}) <= 50


def test_replayed_file_prefers_true_topic_and_brings_its_label_set(tmp_path):
    path = tmp_path / "tickets.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "topic": ["x", "x", "y"], "true_topic": ["x", "y", "z"]}).to_csv(
        path, index=False)
    rows, labels = traffic.replayed(path)
    assert labels == ["x", "y", "z"]
    planned = list(islice(traffic.plan(rows, n=3, seed=0, feedback_rate=1.0, label_noise=0.0, labels=labels), 3))
    assert [p.true_topic for p in planned] == ["x", "y", "z"]


def test_replaying_a_bad_file_is_a_ticket_data_error(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(path, index=False)
    with pytest.raises(TicketDataError, match="missing required column 'text'"):
        traffic.replayed(path)
