"""Arm assignment: sticky per key, monotone in the split, and without sample-ratio mismatch."""

from __future__ import annotations

import random

import pytest
from scipy.stats import chisquare

from retrain.contracts.names import A, B
from router.assign import assign, assignment_key, bucket

N = 10_000


def srm_pvalue(arms: list[str], split_b: float) -> float:
    n_b = arms.count(B)
    return float(chisquare([len(arms) - n_b, n_b], [len(arms) * (1 - split_b), len(arms) * split_b]).pvalue)


def test_same_key_always_gets_the_same_arm():
    for i in range(500):
        key = f"customer-{i}"
        assert len({assign(key, 0.5) for _ in range(5)}) == 1


def test_bucket_is_deterministic_and_in_unit_interval():
    values = [bucket(f"k{i}") for i in range(1000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert values == [bucket(f"k{i}") for i in range(1000)]
    assert len(set(values)) == 1000


def test_customer_id_decides_before_ticket_id_and_no_key_means_random():
    assert assignment_key("c-1", "t-1") == "c-1"
    assert assignment_key(None, "t-1") == "t-1"
    assert assignment_key(None, None) is None


@pytest.mark.parametrize("split_b", [0.1, 0.5, 0.9])
def test_keyed_assignment_passes_srm_on_10000_sequential_customer_ids(split_b: float):
    arms = [assign(f"customer-{i}", split_b) for i in range(N)]
    assert srm_pvalue(arms, split_b) > 0.001


@pytest.mark.parametrize("split_b", [0.1, 0.5, 0.9])
def test_keyed_assignment_passes_srm_on_10000_numeric_ticket_ids(split_b: float):
    arms = [assign(str(1_000_000 + i), split_b) for i in range(N)]
    assert srm_pvalue(arms, split_b) > 0.001


@pytest.mark.parametrize("split_b", [0.1, 0.5, 0.9])
def test_keyless_assignment_passes_srm_on_10000_requests(split_b: float):
    random.seed(20261124)
    arms = [assign(None, split_b) for _ in range(N)]
    assert srm_pvalue(arms, split_b) > 0.001


def test_split_zero_sends_everyone_to_a_and_one_sends_everyone_to_b():
    keys = [f"c{i}" for i in range(1000)] + [None] * 100
    assert {assign(k, 0.0) for k in keys} == {A}
    assert {assign(k, 1.0) for k in keys} == {B}


def test_raising_the_split_only_moves_customers_from_a_to_b():
    keys = [f"customer-{i}" for i in range(2000)]
    before = {k: assign(k, 0.2) for k in keys}
    after = {k: assign(k, 0.6) for k in keys}
    assert all(after[k] == B for k in keys if before[k] == B)
    assert sum(before[k] == A and after[k] == B for k in keys) > 0


def test_draw_decides_keyless_requests_against_the_split():
    assert assign(None, 0.3, draw=0.2999) == B
    assert assign(None, 0.3, draw=0.3) == A
