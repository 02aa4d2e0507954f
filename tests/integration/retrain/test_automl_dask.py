"""The AutoML fan-out on a dask.distributed cluster selects what the embedded loop selects, score for score.

A real LocalCluster of two worker processes runs PyCaret's Fugue backend; the same tickets, folds and
seed go through both engines, and everything but the fit timings must come out equal.
"""

import re

import numpy as np
import pandas as pd
import pytest
from dask.distributed import LocalCluster

from load_test.simulate.generator import generate
from ops.ports import free_port
from retrain.ml.automl import MACRO_F1, _compare, _experiment, select_model
from retrain.ml.cluster import NO_DASHBOARD_PORT, ClusterUnreachableError, open_engine

pytestmark = pytest.mark.slow  # starts a cluster and fits models: `make test` runs it, `make check` does not

COMPARED = ["lr", "nb"]  # cheap ones; nb wins, so the ranked order is not the order they were given in


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        scheduler_kwargs=NO_DASHBOARD_PORT,
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def tickets():
    """300 generated tickets over 8 topics: the candidates score clearly apart, and every topic has 2 folds' worth."""
    return generate("baseline", 300, 3)[["text", "topic"]]


@pytest.fixture(scope="module")
def embedded(tickets):
    return select_model(tickets, candidates=COMPARED, folds=2, seed=0)


@pytest.fixture(scope="module")
def on_dask(tickets, cluster):
    return select_model(
        tickets, candidates=COMPARED, folds=2, seed=0, engine="dask", scheduler=cluster.scheduler_address
    )


def scores(result) -> dict[str, float]:
    return dict(zip(result.leaderboard["candidate"], result.leaderboard[MACRO_F1], strict=True))


def test_both_engines_pick_the_same_winner_with_the_same_cv_score(embedded, on_dask):
    assert on_dask.winner == embedded.winner
    assert on_dask.cv_macro_f1 == embedded.cv_macro_f1


def test_every_candidate_scores_the_same_macro_f1_on_both_engines(embedded, on_dask):
    assert set(scores(on_dask)) == set(COMPARED)
    assert scores(on_dask) == scores(embedded)  # exact: same folds, same seed, same rounding
    assert len(set(scores(embedded).values())) == len(COMPARED)  # distinct scores: the order is not a tie-break


def test_the_dask_leaderboard_has_the_embedded_shape_ids_columns_and_order(embedded, on_dask):
    # The workers number their candidates from 0 each and name every row TextModel: the rows are
    # told apart by their fitted models, then ranked as the embedded loop ranks them. Only timings differ.
    assert list(on_dask.leaderboard.index) == list(range(len(COMPARED)))
    pd.testing.assert_frame_equal(
        on_dask.leaderboard.drop(columns="TT (Sec)"), embedded.leaderboard.drop(columns="TT (Sec)")
    )


def test_the_winner_is_refit_here_into_the_same_served_pipeline(embedded, on_dask, tickets):
    sample = tickets[["text"]].head(20)
    assert np.array_equal(on_dask.pipeline.predict_proba(sample), embedded.pipeline.predict_proba(sample))


def test_the_priority_head_is_selected_alike_on_both_engines(cluster):
    tickets = generate("baseline", 300, 3)[["text", "topic", "priority"]]
    embedded = select_model(tickets, candidates=COMPARED, folds=2, seed=0)
    on_dask = select_model(tickets, candidates=COMPARED, folds=2, seed=0, engine="dask",
                           scheduler=cluster.scheduler_address)
    assert embedded.priority_winner is not None and on_dask.priority_winner == embedded.priority_winner
    pd.testing.assert_frame_equal(on_dask.priority_leaderboard.drop(columns="TT (Sec)"),
                                  embedded.priority_leaderboard.drop(columns="TT (Sec)"))
    sample = tickets[["text"]].head(20)
    assert np.array_equal(on_dask.pipeline.predict_both(sample)[1], embedded.pipeline.predict_both(sample)[1])


def test_a_candidate_failing_on_its_worker_is_left_out_and_the_leaderboard_keeps_its_columns(
    tickets, cluster, embedded, tmp_path
):
    # PyCaret's own backend, given a task whose candidates all failed, drops `TT (Sec)` instead of its
    # internal `_model` column whenever that task's rows come first (tasks are ordered at random).
    exp = _experiment(tickets.reset_index(drop=True), 2, 0)
    with open_engine("dask", cluster.scheduler_address) as parallel:
        leaderboard = _compare(exp, ["no-such-model", "nb"], 0, str(tmp_path), 60.0, parallel)
    assert list(leaderboard["candidate"]) == ["nb"]
    assert list(leaderboard.columns) == list(embedded.leaderboard.columns)


def test_the_local_engine_opens_nothing():
    with open_engine("local", "tcp://127.0.0.1:1") as parallel:
        assert parallel is None


def test_an_unreachable_scheduler_is_a_one_line_error_naming_its_address():
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ClusterUnreachableError, match=re.escape(address)) as raised:
        with open_engine("dask", address, connect_timeout_s=1):
            pass
    assert isinstance(raised.value, RuntimeError) and raised.value.address == address
    assert "\n" not in str(raised.value)


def test_a_scheduler_without_workers_is_the_same_error_not_a_wait_for_ever():
    with LocalCluster(
        n_workers=0, processes=True, dashboard_address=None, host="127.0.0.1", scheduler_kwargs=NO_DASHBOARD_PORT
    ) as empty:
        with pytest.raises(ClusterUnreachableError, match="no worker joined within 1 s"):
            with open_engine("dask", empty.scheduler_address, connect_timeout_s=1):
                pass
