"""Customer-level estimates (`analysis.inference`): the libraries' numbers, and honest about clustering."""

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.stats import bootstrap
from sklearn.metrics import f1_score
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from analysis import inference


def _independent(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One request per customer: outcomes, arm, unit."""
    rng = np.random.default_rng(seed)
    in_b = rng.random(n) < 0.5
    right = rng.random(n) < np.where(in_b, 0.86, 0.80)
    return right, in_b, np.arange(n)


def _repeated(values: np.ndarray, times: int) -> np.ndarray:
    return np.repeat(values, times)


def test_with_one_request_per_customer_the_clustered_difference_is_the_usual_wald_difference():
    right, in_b, units = _independent()
    est = inference.cluster_diff(right, in_b, units)
    k_b, n_b, k_a, n_a = right[in_b].sum(), in_b.sum(), right[~in_b].sum(), (~in_b).sum()
    assert est.value == pytest.approx(k_b / n_b - k_a / n_a)
    low, high = confint_proportions_2indep(k_b, n_b, k_a, n_a, method="wald", compare="diff", alpha=0.05)
    assert est.se == pytest.approx((high - low) / (2 * 1.959964), rel=0.01)  # small-sample factor only
    assert (est.units, est.n) == (2000, 2000)


def test_repeating_each_customer_does_not_shrink_the_customer_level_error():
    """Five identical tickets of one customer are one draw, not five: the SE must not fall by sqrt(5)."""
    right, in_b, units = _independent()
    once = inference.cluster_diff(right, in_b, units)
    five = inference.cluster_diff(_repeated(right, 5), _repeated(in_b, 5), _repeated(units, 5))
    assert five.value == pytest.approx(once.value)
    assert five.se == pytest.approx(once.se, rel=0.01)
    as_if_independent = inference.cluster_diff(_repeated(right, 5), _repeated(in_b, 5), np.arange(10_000))
    assert as_if_independent.se < five.se / 2


def test_an_arm_accuracy_interval_is_statsmodels_wilson_on_the_effective_sample():
    right, _, units = _independent(1000)
    low, high = inference.proportion_interval(right, units)
    assert (low, high) == pytest.approx(proportion_confint(right.sum(), 1000, alpha=0.05, method="wilson"), abs=2e-3)
    wide = inference.proportion_interval(_repeated(right, 4), _repeated(units, 4))
    assert wide == pytest.approx((low, high), abs=2e-3)  # 4000 requests of 1000 customers: as wide as 1000
    assert all(math.isnan(v) for v in inference.proportion_interval([], []))


def test_macro_f1_is_sklearns_and_its_customer_bootstrap_widens_with_clustering():
    rng = np.random.default_rng(3)
    truth = rng.choice(list("abcde"), 600)
    customers = np.arange(600) // 20  # 30 customers, each answered well or badly
    pred = np.where(rng.random(600) < rng.choice([0.5, 0.95], 30)[customers], truth, rng.choice(list("abcdef"), 600))
    assert inference.macro_f1(truth, pred) == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0))
    weights = rng.integers(1, 5, 600)  # cells of identical requests, and categories shared by both (the report's)
    shared = pd.CategoricalDtype(sorted(set(truth) | set(pred) | {"unused"}))
    as_cells = inference.macro_f1(pd.Series(truth, dtype=shared), pd.Series(pred, dtype=shared), counts=weights)
    assert as_cells == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0, sample_weight=weights))
    low, high = inference.macro_f1_interval(truth, pred, np.arange(600), resamples=100)
    assert low < inference.macro_f1(truth, pred) < high
    assert inference.macro_f1_interval(truth, pred, np.arange(600), resamples=100) == (low, high)  # seeded
    c_low, c_high = inference.macro_f1_interval(truth, pred, customers, resamples=100)
    assert c_high - c_low > high - low  # 30 customers of 20 alike tickets each: less information
    assert math.isnan(inference.macro_f1([], []))


def test_a_quantiles_delta_method_error_is_a_customer_bootstraps():
    rng = np.random.default_rng(1)
    units = np.repeat(np.arange(400), 6)
    latency = rng.lognormal(2.5, 0.3, len(units)) * rng.lognormal(0, 0.4, 400)[units]  # customers differ
    at = np.quantile(latency, 0.95)
    cells = pd.DataFrame({"unit": units, "below": latency <= at}).groupby("unit")["below"].agg(["sum", "count"])
    se = inference.quantile_se(cells["sum"], cells["count"], cells.index, 0.95,
                               lambda qs: list(np.quantile(latency, np.clip(qs, 0, 1))))
    order = np.argsort(units, kind="stable")
    per_customer = latency[order].reshape(400, 6)
    boot = bootstrap((np.arange(400),), lambda picked: np.quantile(per_customer[picked], 0.95), n_resamples=400,
                     vectorized=False, random_state=np.random.default_rng(0)).standard_error
    assert se == pytest.approx(boot, rel=0.3)
    assert inference.quantile_se([5], [5], ["x"], 0.95, lambda qs: qs) != inference.quantile_se([5], [5], ["x"], 0.95,
                                                                                                 lambda qs: qs)  # nan


@pytest.mark.parametrize("weighted", [False, True])
def test_the_cluster_sandwich_is_statsmodels_and_frequency_rows_give_the_same(weighted):
    rng = np.random.default_rng(3)
    n = 3000
    units = rng.integers(0, 300, n)
    x = rng.normal(size=n)
    design = np.column_stack([np.ones(n), rng.random(n) < 0.5, x, x * (rng.random(n) < 0.5)])
    y = (rng.random(n) < 0.6 + 0.1 * design[:, 1]).astype(float)
    w = rng.uniform(0.2, 1.0, n) if weighted else None
    model = sm.WLS(y, design, weights=w) if weighted else sm.OLS(y, design)
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": units})
    params, bse = inference._fit(y, design, units, w)
    assert np.allclose(params, fit.params) and np.allclose(bse, fit.bse)
    cells = pd.DataFrame({"u": units, "b": design[:, 1], "y": y}).value_counts().reset_index()  # no covariate
    by_row = inference.cluster_diff(y, design[:, 1].astype(bool), units)
    by_cell = inference.cluster_diff(cells["y"], cells["b"].astype(bool), cells["u"], counts=cells["count"])
    assert by_cell.value == pytest.approx(by_row.value) and by_cell.se == pytest.approx(by_row.se)
    assert by_cell.n == by_row.n == n


@pytest.mark.parametrize("prior", [False, True])
def test_cells_with_the_covariates_mean_and_variance_give_the_request_level_adjusted_fit(prior):
    rng = np.random.default_rng(11)
    n, customers = 6000, 400
    units = rng.integers(0, customers, n)
    b = (rng.random(customers) < 0.5)[units]
    step = (rng.random(n) < 0.4).astype(int)
    x = rng.beta(5, 2, n)  # the champion's confidence: differs between a customer's tickets
    y = (rng.random(n) < 0.3 + 0.6 * x + 0.05 * b).astype(float)
    weights = inference.capped_weights(units, 10)
    requests = pd.DataFrame({"u": units, "b": b, "s": step, "y": y, "x": x, "p": rng.random(customers)[units]})
    covariates = ["x", "p"] if prior else ["x"]
    centred = [requests[c] - np.average(requests[c], weights=weights) for c in covariates]
    design = np.column_stack([np.ones(n), b, step, *centred, *(b * c for c in centred)])
    fit = sm.WLS(y, design, weights=weights).fit(cov_type="cluster", cov_kwds={"groups": units})
    cells = requests.groupby(["u", "b", "s", "y", "p"]).agg(count=("x", "size"), x=("x", "mean"),
                                                             v=("x", lambda v: v.var(ddof=0))).reset_index()
    cap = inference.capped_weights(cells["u"], 10, counts=cells["count"])
    cell = inference.cluster_diff(cells["y"], cells["b"], cells["u"], cells[covariates].to_numpy(),
                                  strata=cells["s"], weights=cap, counts=cells["count"], within=cells["v"])
    assert len(cells) < n / 2 and (cells["v"] > 0).any()
    assert cell.value == pytest.approx(fit.params[1], rel=1e-9) and cell.se == pytest.approx(fit.bse[1], rel=1e-9)
    assert cell.n == n and cell.units == customers


def test_undefined_estimates_are_nan_not_errors():
    assert math.isnan(inference.cluster_diff([1.0, 0.0], [True, True], ["x", "y"]).value)  # one arm
    assert math.isnan(inference.cluster_mean([], []).value)
    assert math.isnan(inference.cluster_mean([1.0, 0.0], ["x", "x"]).se)  # one customer: no spread to measure


@pytest.mark.parametrize("sorted_categories", [True, False])
def test_customer_codes_rank_the_customers_names_whatever_their_categories_hold(sorted_categories):
    names = np.random.default_rng(3).choice([f"c{i}" for i in range(50)], 400)
    categories = sorted(set(names) | {"unused", "a-first"}, reverse=not sorted_categories)
    units = pd.Series(pd.Categorical(names, categories=categories))
    assert inference._codes(units).tolist() == pd.factorize(names, sort=True)[0].tolist()
