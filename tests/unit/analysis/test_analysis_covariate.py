"""CUPAC (`analysis.covariate`, `inference.cluster_diff(covariate=...)`): Lin's interacted regression on the
champion's confidence, statsmodels' numbers, a narrower interval, the same target, and an honest fallback."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from experiment_logs import LogSpec

from analysis import arms, covariate, inference
from analysis.compare import compare
from analysis.experiment import analyse
from ticket_ab.names import SHADOW, SPLIT
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.settings import ABSettings


def _tickets(n: int = 3000, customers: int = 400, gain: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Tickets whose hardness (the champion's confidence) drives both arms' accuracy, customers 50/50."""
    rng = np.random.default_rng(seed)
    unit = rng.integers(0, customers, n)
    in_b = (rng.random(customers) < 0.5)[unit]
    confidence = rng.beta(4, 2, n)
    right = rng.random(n) < np.clip(confidence + gain * in_b, 0, 1)
    return pd.DataFrame({"unit": unit, "in_b": in_b, "right": right, "covariate": confidence})


def test_the_adjusted_difference_is_statsmodels_interacted_ols_with_customer_clusters():
    t = _tickets()
    est = inference.cluster_diff(t["right"], t["in_b"], t["unit"], t["covariate"])
    frame = t.assign(y=t["right"].astype(float), b=t["in_b"].astype(float), x=t["covariate"] - t["covariate"].mean())
    fit = smf.ols("y ~ b * x", frame).fit(cov_type="cluster", cov_kwds={"groups": frame["unit"]})
    assert est.value == pytest.approx(fit.params["b"])
    assert est.se == pytest.approx(fit.bse["b"])


def test_a_covariate_that_predicts_the_outcome_narrows_the_interval_around_the_same_gain():
    estimates = [(inference.cluster_diff(t["right"], t["in_b"], t["unit"]),
                  inference.cluster_diff(t["right"], t["in_b"], t["unit"], t["covariate"]))
                 for t in (_tickets(seed=s) for s in range(40))]
    raw, adjusted = (np.array([[e.value, e.se] for e in column]) for column in zip(*estimates, strict=True))
    assert (adjusted[:, 1] < raw[:, 1]).all()
    assert adjusted[:, 0].std() < raw[:, 0].std()  # the SE is not just smaller on paper
    assert abs(adjusted[:, 0].mean() - 0.05) < 3 * adjusted[:, 0].std() / np.sqrt(40)  # still the true gain


def test_a_constant_covariate_leaves_the_estimate_unadjusted():
    t = _tickets()
    raw = inference.cluster_diff(t["right"], t["in_b"], t["unit"])
    assert inference.cluster_diff(t["right"], t["in_b"], t["unit"], np.full(len(t), 0.7)) == raw


def _scorer(calls: list):
    def score(version, texts):
        calls.append((version, len(texts)))
        return np.linspace(0.2, 1.0, len(texts))
    return score


def _texts(rids):
    return [f"text {r}" for r in rids]


def test_attach_scores_every_labelled_ticket_with_the_period_champion():
    rows = pd.DataFrame({"label": ["a", None, "b"], "rid": [1, 2, 3]})
    calls = []
    scored, note = covariate.attach(rows, SPLIT, "3", _scorer(calls), _texts, 10)
    assert note is None and calls == [("3", 0), ("3", 2)]  # the champion is loaded before any text is read
    assert scored[covariate.COLUMN].isna().tolist() == [False, True, False]


def test_attach_leaves_shadow_mode_and_missing_scorers_alone():
    rows = pd.DataFrame({"label": ["a"], "rid": [1]})
    assert covariate.attach(rows, SHADOW, "3", _scorer([]), _texts, 10)[0] is rows
    assert covariate.attach(rows, SPLIT, "3", None, _texts, 10) == (rows, None)


def test_confidence_of_no_text_is_empty_so_the_champion_can_be_loaded_first():
    class Model:  # a pipeline that, like scikit-learn's, refuses to score zero samples
        def predict_proba(self, frame):
            assert len(frame), "Found array with 0 sample(s)"
            return np.tile([0.2, 0.8], (len(frame), 1))

    assert covariate.confidence(Model(), []).shape == (0,)
    assert covariate.confidence(Model(), ["a", "b"]).tolist() == [0.8, 0.8]


def test_more_labelled_tickets_than_the_cap_are_not_scored_and_the_note_says_so():
    rows = pd.DataFrame({"label": ["a", "b", "c"], "rid": [1, 2, 3]})
    calls = []
    scored, note = covariate.attach(rows, SPLIT, "3", _scorer(calls), _texts, 2)
    assert scored is rows and calls == [] and "3 labelled tickets without a logged champion confidence exceed" in note


def test_the_confidence_the_router_logged_is_taken_as_it_is_and_nothing_is_scored():
    rows = pd.DataFrame({"label": ["a", None, "b"], "rid": [1, 2, 3], covariate.COLUMN: [0.9, np.nan, 0.4]})
    calls = []
    scored, note = covariate.attach(rows, SPLIT, "3", _scorer(calls), _texts, 0)
    assert note is None and calls == [] and scored[covariate.COLUMN].tolist()[::2] == [0.9, 0.4]


def test_only_the_tickets_the_router_logged_no_confidence_for_are_scored():
    rows = pd.DataFrame({"label": ["a", "b", "c"], "rid": [1, 2, 3], covariate.COLUMN: [0.9, np.nan, 0.4]})
    calls = []
    scored, note = covariate.attach(rows, SPLIT, "3", _scorer(calls), _texts, 1)
    assert note is None and calls == [("3", 0), ("3", 1)]
    assert scored[covariate.COLUMN][[0, 2]].tolist() == [0.9, 0.4] and scored[covariate.COLUMN].notna().all()


def test_a_cell_of_logged_requests_keeps_its_spread_and_an_unlogged_request_is_scored_alone():
    rows = pd.DataFrame({"label": ["a", "b"], "rid": [None, "r7"], "count": [3, 1],
                         covariate.COLUMN: [0.8, np.nan], covariate.VARIANCE: [0.01, 0.0]})
    calls = []
    scored, note = covariate.attach(rows, SPLIT, "3", lambda v, texts: calls.append(list(texts)) or np.full(
        len(texts), 0.5), _texts, 1)
    assert note is None and calls == [[], ["text r7"]]
    assert scored[covariate.COLUMN].tolist() == [0.8, 0.5] and scored[covariate.VARIANCE].tolist() == [0.01, 0.0]


def test_pooling_cells_per_customer_arm_step_and_result_leaves_the_comparison_as_it_was():
    rng = np.random.default_rng(4)
    n, customers = 5000, 300
    unit = rng.integers(0, customers, n)
    cells = pd.DataFrame({"unit": pd.Categorical(unit.astype(str)), "in_b": (rng.random(customers) < 0.5)[unit],
                          "stratum": pd.Categorical(np.where(rng.random(n) < 0.3, "p1", "p2")),
                          "right": rng.random(n) < 0.7, "count": rng.integers(1, 4, n),
                          "covariate": rng.beta(4, 2, n), "covariate_var": rng.uniform(0, 0.02, n)})
    pooled = arms.pooled(cells)
    assert len(pooled) < len(cells) / 2 and pooled["count"].sum() == cells["count"].sum()
    both = [compare(frame, SPLIT, None, ABSettings(customer_cap=5), True) for frame in (cells, pooled)]
    assert both[0]["adjustment"]["applied"] and both[1]["adjustment"]["applied"]
    for key in ("diff", "se", "ci_low", "ci_high", "n_a", "n_b", "units"):
        assert both[1][key] == pytest.approx(both[0][key], rel=1e-9)


def test_with_cupac_off_a_logged_confidence_is_not_used():
    rows = pd.DataFrame({"label": ["a"], "rid": [1], covariate.COLUMN: [0.9]})
    assert covariate.COLUMN not in covariate.attach(rows, SPLIT, "3", None, _texts, 10)[0]


def test_a_champion_that_cannot_be_scored_gives_an_unadjusted_comparison_and_a_note(ab_logs):
    def broken(version, texts):
        raise covariate.CovariateError(f"champion v{version} could not be loaded")

    logs = ab_logs(LogSpec(acc_a=0.80, acc_b=0.86))
    requests, feedback = read_requests(logs).rows, read_feedback(logs).rows
    s = analyse(requests, feedback, thresholds=ABSettings(resamples=50), scorer=broken).summary
    assert not s["comparison"]["adjustment"]["applied"]
    assert any("no CUPAC adjustment" in n and "champion v3 could not be loaded" in n for n in s["notes"])
    plain = analyse(requests, feedback, thresholds=ABSettings(resamples=50)).summary
    assert s["comparison"]["diff"] == pytest.approx(plain["comparison"]["diff"])


def test_the_report_names_the_adjustment_and_what_it_removed(ab_logs):
    logs = ab_logs(LogSpec(acc_a=0.80, acc_b=0.86))
    requests, feedback = read_requests(logs).rows, read_feedback(logs).rows
    rng = np.random.default_rng(0)
    s = analyse(requests, feedback, thresholds=ABSettings(resamples=50),
                scorer=lambda version, texts: rng.random(len(texts))).summary
    adjustment = s["comparison"]["adjustment"]
    assert adjustment["applied"] and "CUPAC" in s["comparison"]["test"]
    plain = analyse(requests, feedback, thresholds=ABSettings(resamples=50)).summary["comparison"]
    assert adjustment["unadjusted_diff"] == pytest.approx(plain["diff"])
    assert adjustment["variance_reduction"] == pytest.approx(1 - (s["comparison"]["se"] / plain["se"]) ** 2)
