"""The declared estimand and the ramp (`inference.cluster_diff(strata=, weights=)`, `compare`): statsmodels'
numbers, unbiased across ramp steps where the naive pooled difference is not, and an honest false-positive
rate on a heavy-tailed customer base."""

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy.stats import norm

from analysis import inference
from analysis.compare import compare, evidence
from ticket_ab.names import SPLIT
from ticket_ab.settings import ABSettings


def _ramp(customers: int = 150, per_step: int = 500, steps: tuple[float, ...] = (0.2, 0.5),
          base: tuple[float, ...] = (0.70, 0.85), gain: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Labelled requests of a ramp: a customer is in B from the first step whose share exceeds its bucket
    (monotone buckets), and each step has its own base accuracy (a different week's tickets)."""
    rng = np.random.default_rng(seed)
    bucket, offset = rng.random(customers), rng.normal(0, 0.05, customers)
    frames = []
    for step, (share, accuracy) in enumerate(zip(steps, base, strict=True)):
        unit = rng.integers(0, customers, per_step)
        in_b = bucket[unit] < share
        right = rng.random(per_step) < np.clip(accuracy + offset[unit] + gain * in_b, 0, 1)
        frames.append(pd.DataFrame({"unit": unit, "in_b": in_b, "right": right, "stratum": step}))
    return pd.concat(frames, ignore_index=True)


def _heavy_tailed(seed: int, gain: float = 0.0, customers: int = 300, requests: int = 4000) -> pd.DataFrame:
    """Issue 24's base: customer k sends in proportion to 1/k^1.1 (the largest about a fifth), its accuracy
    is Beta(3, 1.2), half the requests are labelled, customers are randomised 50/50."""
    rng = np.random.default_rng(seed)
    share = 1 / np.arange(1, customers + 1) ** 1.1
    accuracy, in_b = rng.beta(3, 1.2, customers), rng.random(customers) < 0.5
    unit = rng.choice(customers, size=requests // 2, p=share / share.sum())
    right = rng.random(len(unit)) < np.clip(accuracy[unit] + gain * in_b[unit], 0, 1)
    return pd.DataFrame({"unit": unit, "in_b": in_b[unit], "right": right})


def test_capped_weights_let_each_customer_weigh_at_most_cap_requests():
    units = np.array(["busy"] * 25 + ["mid"] * 10 + ["quiet"] * 3)
    w = inference.capped_weights(units, 10)
    assert pd.Series(w).groupby(units).sum().to_dict() == pytest.approx({"busy": 10.0, "mid": 10.0, "quiet": 3.0})
    assert (inference.capped_weights(units, 0) == 1).all()  # cap 0: every request weighs the same
    assert len(inference.capped_weights([], 10)) == 0


def test_a_customers_earlier_labelled_requests_raise_its_cap_one_for_one():
    units = ["big"] * 30 + ["known"] * 30 + ["small"] * 4
    earlier = [0] * 30 + [12] * 30 + [0] * 4  # per row: the customer's earlier labelled requests
    w = pd.Series(inference.capped_weights(units, 10, earlier)).groupby(units).sum()
    assert w.to_dict() == pytest.approx({"big": 10, "known": 22, "small": 4})
    assert (inference.capped_weights(units, 0, earlier) == 1).all()  # cap 0: request-weighted whatever the record


def test_the_capped_stratified_difference_is_statsmodels_wls_with_step_effects_and_customer_clusters():
    t = _ramp()
    frame = t.assign(y=t["right"].astype(float), b=t["in_b"].astype(float),
                     w=inference.capped_weights(t["unit"], 10), x=np.random.default_rng(1).random(len(t)))
    cluster = {"cov_type": "cluster", "cov_kwds": {"groups": frame["unit"]}}
    fit = smf.wls("y ~ b + C(stratum)", frame, weights=frame["w"]).fit(**cluster)
    est = inference.cluster_diff(frame["y"], frame["in_b"], frame["unit"], strata=frame["stratum"], weights=frame["w"])
    assert (est.value, est.se) == (pytest.approx(fit.params["b"]), pytest.approx(fit.bse["b"]))
    centred = frame.assign(x=frame["x"] - np.average(frame["x"], weights=frame["w"]))  # Lin: at the weighted mean
    fit = smf.wls("y ~ b * x + C(stratum)", centred, weights=frame["w"]).fit(**cluster)
    est = inference.cluster_diff(frame["y"], frame["in_b"], frame["unit"], frame["x"], strata=frame["stratum"],
                                 weights=frame["w"])
    assert (est.value, est.se) == (pytest.approx(fit.params["b"]), pytest.approx(fit.bse["b"]))
    assert est.n == len(frame)  # the information count stays the labelled requests


def test_with_too_few_customers_to_cluster_the_estimate_is_still_the_weighted_stratified_regression():
    rng = np.random.default_rng(2)
    stratum, unit = np.repeat([0, 1], 8), np.tile(np.repeat(["x", "y"], 4), 2)
    y, w = rng.random(16), rng.uniform(0.2, 1.0, 16)
    est = inference.cluster_diff(y, unit == "y", unit, strata=stratum, weights=w)
    design = np.column_stack([np.ones(16), unit == "y", stratum == 1]).astype(float)
    assert est.value == pytest.approx(sm.WLS(y, design, weights=w).fit().params[1])
    assert math.isnan(est.se)
    confounded = (unit == "y") & (stratum == 1)  # B exactly where step 1 is: no step with both arms
    assert math.isnan(inference.cluster_diff(y, confounded, unit, strata=confounded).value)


def test_ramp_steps_pooled_as_strata_are_unbiased_where_the_naive_pooled_difference_is_not():
    """B's share grows from 20% to 50% while the base accuracy moves from 70% to 85%: pooled naively, B
    has more of the easy week's tickets, which looks like a gain; within steps it does not."""
    sims = 200
    stratified, se, naive = np.empty(sims), np.empty(sims), np.empty(sims)
    for seed in range(sims):
        t = _ramp(seed=seed)
        est = inference.cluster_diff(t["right"].astype(float), t["in_b"], t["unit"], strata=t["stratum"])
        stratified[seed], se[seed] = est.value, est.se
        naive[seed] = t.loc[t["in_b"], "right"].mean() - t.loc[~t["in_b"], "right"].mean()
    tolerance = 3 * stratified.std() / math.sqrt(sims)
    assert abs(stratified.mean() - 0.05) < tolerance
    assert naive.mean() - 0.05 > 10 * naive.std() / math.sqrt(sims)  # the step effect, passed off as B's
    assert se.mean() == pytest.approx(stratified.std(), rel=0.2)  # and the customer-level SE is honest


def test_on_a_heavy_tailed_base_the_capped_aa_comparison_rejects_at_its_nominal_rate():
    sims, z = 300, norm.ppf(0.95)  # one look at the fixed-horizon 90% interval
    rejected = 0
    for seed in range(sims):
        t = _heavy_tailed(seed)
        est = inference.cluster_diff(t["right"].astype(float), t["in_b"], t["unit"],
                                     weights=inference.capped_weights(t["unit"], 10))
        rejected += abs(est.value) > z * est.se
    assert abs(rejected / sims - 0.10) < 3 * math.sqrt(0.10 * 0.90 / sims)


def test_compare_declares_the_capped_estimand_reports_the_request_weighted_one_and_pools_steps():
    t = _ramp()
    th = ABSettings()
    c = compare(t, SPLIT, None, th, seq=True)
    weights = inference.capped_weights(t["unit"], th.customer_cap)
    right = t["right"].astype(float)
    assert c["diff"] == inference.cluster_diff(right, t["in_b"], t["unit"], strata=t["stratum"], weights=weights).value
    assert c["adjustment"]["uncapped_diff"] == inference.cluster_diff(right, t["in_b"], t["unit"],
                                                                      strata=t["stratum"]).value
    capped = int((t["unit"].value_counts() > th.customer_cap).sum())
    assert c["estimand"] == {"customer_cap": 10, "capped_customers": capped, "statement": c["estimand"]["statement"]}
    assert f"{capped} customers were capped" in c["estimand"]["statement"]
    assert "2 ramp steps pooled as strata" in c["estimand"]["statement"] and c["strata"] == 2
    assert "customer-capped" in c["test"] and "stratified by 2 ramp steps" in c["test"]
    plain = compare(t.drop(columns="stratum"), SPLIT, None, th.model_copy(update={"customer_cap": 0}), seq=True)
    assert plain["diff"] == plain["adjustment"]["uncapped_diff"] and plain["strata"] == 1
    assert "customer-capped" not in plain["test"] and plain["estimand"]["capped_customers"] == 0


def test_overwhelming_evidence_reads_as_a_bound_not_a_29_digit_number():
    statement = evidence(inference.Estimate(0.25, 0.01, 300, 4000), ABSettings(), True)["statement"]
    assert "likelihood ratio > 10^6 of the 20 needed" in statement
