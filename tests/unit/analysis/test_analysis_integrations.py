"""Client credentials in the A/B analysis: only authenticated traffic counts once there is any, and one
integration that picks its customers' arm can neither fire the sample-ratio check nor move it."""

import pandas as pd
import pytest
from experiment_logs import LogSpec, Phase

from analysis.experiment import analyse
from retrain.ml import stats
from ticket_ab.requestlog import ANONYMOUS, read_feedback, read_requests
from ticket_ab.settings import ABSettings

FAST = ABSettings(resamples=50)


@pytest.fixture
def desk(ab_logs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A balanced 50/50 test whose every request came through the integration `desk`."""
    logs = ab_logs(LogSpec(phases=[Phase(1200)], customers=300, acc_a=0.80, acc_b=0.84, seed=3))
    requests = read_requests(logs).rows.assign(integration="desk")
    return requests, read_feedback(logs).rows


def _extra(requests: pd.DataFrame, n: int, integration: str, variant: str, prefix: str) -> pd.DataFrame:
    """`n` one-request customers of `variant`, sent by `integration` (copies of the log's own rows)."""
    rows = requests[requests["variant"] == variant].tail(n).copy()  # inside the tested period
    return rows.assign(integration=integration, customer_id=[f"{prefix}-{i}" for i in range(len(rows))],
                       request_id=[f"{prefix}-r{i}" for i in range(len(rows))])


def _summary(requests: pd.DataFrame, feedback: pd.DataFrame) -> dict:
    return analyse(requests.sort_values("timestamp"), feedback, thresholds=FAST).summary


def test_an_integration_that_floods_one_arm_is_named_and_left_out_and_the_others_figure_does_not_move(desk):
    requests, feedback = desk
    clean = _summary(requests, feedback)["srm"]
    attacked = _summary(pd.concat([requests, _extra(requests, 300, "attacker", "A", "atk")]), feedback)
    srm = attacked["srm"]
    assert srm["by_integration"]["attacker"]["flagged"] and srm["excluded"] == ["attacker"]
    for key in ("observed", "chi2", "p_value", "flagged"):
        assert srm[key] == clean[key], key
    assert not srm["flagged"]
    assert any("attacker" in note and "left out" in note for note in attacked["notes"])
    pooled = stats.srm_test(list(clean["observed"].values()), [0.5, 0.5]).p_value
    assert pooled == pytest.approx(clean["p_value"]), "the headline is the library's test of the units counted"


def test_a_mismatch_in_every_integration_is_flagged_not_excused(desk):
    requests, feedback = desk
    b_customers = requests.loc[requests["variant"] == "B", "customer_id"].unique()
    thinned = requests[~requests["customer_id"].isin(b_customers[: len(b_customers) // 2])]
    both = pd.concat([thinned.assign(integration="one"), _extra(requests, 300, "two", "A", "two")])
    srm = _summary(both, feedback)["srm"]
    assert srm["by_integration"]["one"]["flagged"] and srm["by_integration"]["two"]["flagged"]
    assert srm["excluded"] == [] and srm["flagged"]


def test_anonymous_requests_do_not_count_once_any_request_is_authenticated(desk):
    requests, feedback = desk
    with_anonymous = pd.concat([requests, _extra(requests, 300, ANONYMOUS, "B", "anon")])
    summary = _summary(with_anonymous, feedback)
    assert summary["srm"]["observed"] == _summary(requests, feedback)["srm"]["observed"]
    assert any("300 anonymous requests" in note for note in summary["notes"])


def test_logs_from_before_the_integration_column_count_every_row(ab_logs):
    logs = ab_logs(LogSpec(phases=[Phase(1200)], customers=300, seed=4))
    requests = read_requests(logs).rows
    assert set(requests["integration"]) == {""}, "older files read the new column as empty"
    summary = analyse(requests, read_feedback(logs).rows, thresholds=FAST).summary
    assert summary["data"]["requests_analysed"] == len(requests)
    assert list(summary["srm"]["by_integration"]) == [ANONYMOUS]
