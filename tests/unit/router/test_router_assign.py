"""Arm assignment: sticky per key within an experiment, reshuffled across experiments, no sample-ratio mismatch."""

from __future__ import annotations

import random

import pytest
from scipy.stats import binomtest, chisquare

from router.assign import assign, assignment_key, bucket
from ticket_ab.names import A, B

N = 10_000
EXPERIMENT = "0123456789ab"


def srm_pvalue(arms: list[str], split_b: float) -> float:
    n_b = arms.count(B)
    return float(chisquare([len(arms) - n_b, n_b], [len(arms) * (1 - split_b), len(arms) * split_b]).pvalue)


def test_same_key_always_gets_the_same_arm():
    for i in range(500):
        key = f"customer-{i}"
        assert len({assign(key, 0.5, EXPERIMENT) for _ in range(5)}) == 1


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
    arms = [assign(f"customer-{i}", split_b, EXPERIMENT) for i in range(N)]
    assert srm_pvalue(arms, split_b) > 0.001


@pytest.mark.parametrize("split_b", [0.1, 0.5, 0.9])
def test_keyed_assignment_passes_srm_on_10000_numeric_ticket_ids(split_b: float):
    arms = [assign(str(1_000_000 + i), split_b, EXPERIMENT) for i in range(N)]
    assert srm_pvalue(arms, split_b) > 0.001


@pytest.mark.parametrize("split_b", [0.1, 0.5, 0.9])
def test_keyless_assignment_passes_srm_on_10000_requests(split_b: float):
    random.seed(20261124)
    arms = [assign(None, split_b, EXPERIMENT) for _ in range(N)]
    assert srm_pvalue(arms, split_b) > 0.001


def test_split_zero_sends_everyone_to_a_and_one_sends_everyone_to_b():
    keys = [f"c{i}" for i in range(1000)] + [None] * 100
    assert {assign(k, 0.0, EXPERIMENT) for k in keys} == {A}
    assert {assign(k, 1.0, EXPERIMENT) for k in keys} == {B}


def test_within_one_experiment_a_higher_split_only_moves_customers_from_a_to_b():
    keys = [f"customer-{i}" for i in range(2000)]
    before = {k: assign(k, 0.2, EXPERIMENT) for k in keys}
    after = {k: assign(k, 0.6, EXPERIMENT) for k in keys}
    assert all(after[k] == B for k in keys if before[k] == B)
    assert sum(before[k] == A and after[k] == B for k in keys) > 0


@pytest.mark.parametrize("split_b", [0.1, 0.5, 0.9])
def test_a_new_experiment_reshuffles_customers_as_two_independent_draws_would(split_b: float):
    """Each arm is a fresh split_b coin per experiment, so a customer changes arm with p = 2 s (1 - s)."""
    keys = [f"customer-{i}" for i in range(N)]
    changed = sum(assign(k, split_b, "experiment-one") != assign(k, split_b, "experiment-two") for k in keys)
    expected = 2 * split_b * (1 - split_b)
    assert binomtest(changed, N, expected).pvalue > 0.001, f"{changed} of {N} changed arm, expected ~{expected * N:.0f}"


def test_the_bucket_is_salted_with_the_experiment_id():
    for i in range(200):
        expected = B if bucket(f"{EXPERIMENT}:c-{i}") < 0.5 else A
        assert assign(f"c-{i}", 0.5, EXPERIMENT) == expected


def test_draw_decides_keyless_requests_against_the_split():
    assert assign(None, 0.3, EXPERIMENT, draw=0.2999) == B
    assert assign(None, 0.3, EXPERIMENT, draw=0.3) == A
