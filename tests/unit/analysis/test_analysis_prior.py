"""CUPED (`covariate.customer_prior`, `covariate.with_prior`, `inference.cluster_diff` with a 2-D covariate):
each customer's earlier accuracy under the champion as a regression covariate. statsmodels' numbers, a hand
example, an honest level on issue 24's heavy-tailed base, and the report saying what was applied."""

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from experiment_logs import LogSpec, Phase

from analysis import covariate, inference, traffic
from analysis.compare import compare
from analysis.experiment import analyse
from analysis.prepare import Prepared
from ticket_ab import logscan
from ticket_ab.names import SPLIT
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.settings import ABSettings

FAST = ABSettings(resamples=50)
EARLIER = "customer's earlier accuracy"


def test_the_prior_is_each_customers_earlier_mean_shrunk_towards_the_pooled_one():
    # earlier: a right 2 of 3, b right 0 of 1; pooled mean 2/4; strength 2
    prior = covariate.customer_prior(["a", "b", "c", "a"], ["a", "a", "a", "b"], [True, True, False, False], 2.0)
    assert prior == pytest.approx([(2 + 1) / (3 + 2), (0 + 1) / (1 + 2), 0.5, 0.6])  # c has no record: the pool
    raw = covariate.customer_prior(["a", "b"], ["a", "a", "a", "b"], [True, True, False, False], 0.0)
    assert raw == pytest.approx([2 / 3, 0.0])  # strength 0: the customer's own earlier mean
    assert np.isnan(covariate.customer_prior(["a"], [], [], 10.0)).all()  # no earlier labels at all
    assert covariate.customer_prior([1, 2], ["1"], [True], 1.0) == pytest.approx([1.0, 1.0])  # units as text


def test_prior_strength_recovers_the_prior_count_of_a_simulated_beta_binomial_base():
    rng = np.random.default_rng(0)
    # The strength that makes shrinkage the posterior mean is a + b (a small spread is seen less sharply).
    for a, b, tolerance in ((3.0, 1.2, 0.15), (8.0, 8.0, 0.25)):
        level, n = rng.beta(a, b, 3000), rng.integers(1, 40, 3000)
        units = np.repeat(np.arange(3000), n)
        estimate = covariate.prior_strength(units, rng.random(len(units)) < level[units])
        assert estimate == pytest.approx(a + b, rel=tolerance)


def test_without_spread_between_customers_the_prior_is_the_pooled_mean_for_everyone():
    rng = np.random.default_rng(1)
    units = np.repeat(np.arange(400), 10)
    right = rng.random(len(units)) < 0.7  # one accuracy for all: the spread is noise (or less)
    strength = covariate.prior_strength(units, right)
    assert strength > 50
    prior = covariate.customer_prior(np.arange(400), units, right)
    assert np.ptp(prior) < 0.1 * np.ptp(pd.Series(right).groupby(units).mean())
    assert covariate.prior_strength([1, 2, 3], [True, True, True]) == math.inf  # no variation at all


def _tickets(seed: int = 0, n: int = 3000, customers: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = rng.integers(0, customers, n)
    level, in_b = rng.beta(3, 1.2, customers), rng.random(customers) < 0.5
    confidence = rng.beta(4, 2, n)
    right = rng.random(n) < np.clip(0.5 * level[unit] + 0.5 * confidence + 0.05 * in_b[unit], 0, 1)
    return pd.DataFrame({"unit": unit, "in_b": in_b[unit], "y": right.astype(float), "x1": confidence,
                         "x2": level[unit] + rng.normal(0, 0.05, customers)[unit], "stratum": rng.integers(0, 2, n)})


def test_two_covariates_are_statsmodels_fully_interacted_wls_with_customer_clusters():
    t = _tickets()
    w = inference.capped_weights(t["unit"], 10)
    centred = t.assign(b=t["in_b"].astype(float), **{x: t[x] - np.average(t[x], weights=w) for x in ("x1", "x2")})
    fit = smf.wls("y ~ b * (x1 + x2) + C(stratum)", centred, weights=w).fit(
        cov_type="cluster", cov_kwds={"groups": t["unit"]})
    est = inference.cluster_diff(t["y"], t["in_b"], t["unit"], t[["x1", "x2"]].to_numpy(), strata=t["stratum"],
                                 weights=w)
    assert (est.value, est.se) == (pytest.approx(fit.params["b"]), pytest.approx(fit.bse["b"]))
    plain = smf.ols("y ~ b * (x1 + x2)", centred.assign(**{x: t[x] - t[x].mean() for x in ("x1", "x2")})).fit(
        cov_type="cluster", cov_kwds={"groups": t["unit"]})
    est = inference.cluster_diff(t["y"], t["in_b"], t["unit"], t[["x1", "x2"]].to_numpy())
    assert (est.value, est.se) == (pytest.approx(plain.params["b"]), pytest.approx(plain.bse["b"]))


def test_one_varying_column_of_a_2d_covariate_is_the_1d_adjustment():
    t = _tickets(seed=1)
    one = inference.cluster_diff(t["y"], t["in_b"], t["unit"], t["x1"])
    assert inference.cluster_diff(t["y"], t["in_b"], t["unit"], t[["x1"]].to_numpy()) == one
    constant = np.column_stack([t["x1"], np.full(len(t), 0.7)])  # a column without variation is left out
    assert inference.cluster_diff(t["y"], t["in_b"], t["unit"], constant) == one


def _heavy_tailed(seed: int, gain: float = 0.0, customers: int = 300, requests: int = 4000) -> pd.DataFrame:
    """Issue 24's base (customer k sends in proportion to 1/k^1.1, its accuracy is Beta(3, 1.2), half the
    requests labelled, customers 50/50) with an earlier champion-only period of as many requests."""
    rng = np.random.default_rng(seed)
    share = 1 / np.arange(1, customers + 1) ** 1.1
    accuracy, in_b = rng.beta(3, 1.2, customers), rng.random(customers) < 0.5
    unit = rng.choice(customers, size=requests // 2, p=share / share.sum())
    right = rng.random(len(unit)) < np.clip(accuracy[unit] + gain * in_b[unit], 0, 1)
    before = rng.choice(customers, size=requests // 2, p=share / share.sum())
    before_right = rng.random(len(before)) < accuracy[before]
    return pd.DataFrame({"unit": unit, "in_b": in_b[unit], "right": right,
                         covariate.PRIOR: covariate.customer_prior(unit, before, before_right, 10.0),
                         covariate.PRIOR_N: pd.Series(unit).map(pd.Series(before).value_counts()).fillna(0)})


def test_on_a_heavy_tailed_base_the_prior_adjusted_aa_comparison_rejects_at_its_nominal_rate():
    sims, th = 300, ABSettings()  # one look at the fixed-horizon 90% interval, capped as the verdict is
    rejected, reduction = 0, []
    for seed in range(sims):
        c = compare(_heavy_tailed(seed), SPLIT, None, th, seq=False)
        assert c["adjustment"]["covariates"] == [EARLIER]
        rejected += c["ci_low"] > 0 or c["ci_high"] < 0
        reduction.append(c["adjustment"]["variance_reduction"])
    assert abs(rejected / sims - 0.10) < 3 * math.sqrt(0.10 * 0.90 / sims)
    assert np.mean(reduction) > 0.2  # and it removes the between-customer spread it is there for


def _logs(ab_logs, *phases: Phase, **spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    logs = ab_logs(LogSpec(phases=list(phases), customers=200, customer_spread=1.5, acc_a=0.80, acc_b=0.88, **spec))
    return read_requests(logs).rows, read_feedback(logs).rows


def test_the_analysis_adjusts_on_each_customers_earlier_accuracy_and_says_so(ab_logs):
    requests, feedback = _logs(ab_logs, Phase(3000, challenger=False), Phase(3000))
    s = analyse(requests, feedback, thresholds=FAST).summary
    c, adjustment = s["comparison"], s["comparison"]["adjustment"]
    assert adjustment["applied"] and adjustment["covariates"] == [EARLIER] and "CUPED" in c["test"]
    assert 0 < adjustment["earlier_customers"] <= c["units"] and adjustment["earlier_labelled"] > 1000
    assert adjustment["variance_reduction"] > 0 and c["se"] < adjustment["unadjusted_se"]
    assert s["data"]["requests_analysed"] == 3000  # the earlier period is a covariate, not part of the test
    start = pd.Timestamp(s["window"]["analysed_from"])  # without the earlier period: unadjusted as before
    plain = analyse(requests, feedback, thresholds=FAST, since=start).summary["comparison"]
    assert not plain["adjustment"]["applied"] and "earlier" not in plain["estimand"]["statement"]
    assert "plus its earlier labelled ones" in c["estimand"]["statement"]  # the record raises each customer's cap
    assert c["estimand"]["capped_customers"] < plain["estimand"]["capped_customers"]
    scored = analyse(requests, feedback, thresholds=FAST,
                     scorer=lambda version, texts: np.random.default_rng(0).random(len(texts))).summary["comparison"]
    assert scored["adjustment"]["covariates"] == ["champion confidence", EARLIER]  # both together
    assert "CUPAC" in scored["test"] and "CUPED" in scored["test"]


def test_earlier_experiments_and_shadow_mode_give_no_prior(ab_logs):
    """An earlier period with B customers gave earlier labels to its A customers only; shadow mode is paired."""
    requests, feedback = _logs(ab_logs, Phase(3000, version_a="2"), Phase(3000))
    s = analyse(requests, feedback, thresholds=FAST).summary
    assert s["config"]["changed"] and not s["comparison"]["adjustment"]["applied"]
    requests, feedback = _logs(ab_logs, Phase(2000, challenger=False), Phase(2000, mode="shadow"))
    c = analyse(requests, feedback, thresholds=FAST).summary["comparison"]
    assert c["kind"] == "paired" and not c["adjustment"]["applied"]


def test_with_prior_reads_only_champion_rows_before_the_experiment():
    window = pd.DataFrame({
        "timestamp": pd.to_datetime(["2026-01-01T00:00", "2026-01-01T01:00", "2026-01-01T02:00",
                                     "2026-01-01T03:00", "2026-01-01T04:00"], utc=True),
        "unit": ["a", "b", "a", "a", "b"], "variant": ["A", "A", "A", "A", "B"], "topic": ["x", "", "x", "x", "y"],
        "label": ["x", "x", None, "y", "x"], "period": ["old", "old", "old", "new", "new"]})
    with logscan.connect(256) as con:
        con.register("window_rows", window.assign(ts=window["timestamp"], ord=range(len(window))))
        con.execute("CREATE TEMP VIEW win AS SELECT * FROM window_rows")
        con.execute("CREATE TEMP TABLE an_steps AS SELECT 'new' AS period")
        before = traffic.earlier(Prepared(con))
        con.execute("UPDATE an_steps SET period = 'old'")
        nothing = traffic.earlier(Prepared(con))
    assert before["unit"].tolist() == ["a"] and before["right"].tolist() == [True]  # unanswered and unlabelled out
    outcomes = pd.DataFrame({"unit": ["a", "b"], "in_b": [False, True], "right": [False, True]})
    rows = covariate.with_prior(outcomes, before, SPLIT, 10.0)
    assert rows[covariate.PRIOR].tolist() == [1.0, 1.0] and rows[covariate.PRIOR_N].tolist() == [1, 0]
    assert nothing.empty and covariate.with_prior(outcomes, nothing, SPLIT, 10.0) is outcomes  # nothing before
