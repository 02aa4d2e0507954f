import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from load_test.simulate.generator import generate
from retrain.ml.features import baseline_pipeline
from retrain.ml.relabel import FIXED, PSEUDO, REVIEW_COLUMNS, clean_labels, relabel, write_review_queue
from retrain.ml.threshold import THRESHOLDS, calibrate_threshold, precision_lower
from ticket_ab.settings import FeedbackSettings, RelabelSettings

pytestmark = pytest.mark.slow  # fits models: `make test` runs it, `make check` does not


@pytest.fixture(scope="module")
def reference():
    return generate("baseline", 1500, 1)[["text", "topic"]]


def _window(scenario: str, n: int, seed: int, labelled: float, noise: float = 0.0) -> pd.DataFrame:
    tickets = generate(scenario, n, seed, label_noise=noise, start="2026-04-01T00:00:00Z")
    gold = np.random.default_rng(seed).random(n) < labelled
    return tickets.assign(label=tickets["topic"].where(gold), request_id=None, origin="router")


# ---- calibration -------------------------------------------------------------------------------

def test_precision_lower_bound_is_the_one_sided_clopper_pearson_bound():
    assert precision_lower(90, 100) == pytest.approx(beta.ppf(0.05, 90, 11))
    assert precision_lower(59, 59) >= 0.95 > precision_lower(58, 58)  # all right, the fewest that prove 0.95


def test_calibration_picks_the_lowest_grid_threshold_whose_precision_is_certain_enough():
    confidence = np.linspace(1.0, 0.01, 400)
    correct = np.r_[np.ones(200, bool), np.zeros(200, bool)]  # the top half is right, the rest wrong
    calibration = calibrate_threshold(confidence, correct, target=0.95)
    assert calibration.threshold in THRESHOLDS
    assert calibration.lower >= 0.95 and calibration.precision >= 0.95
    assert calibration.lower == pytest.approx(precision_lower(200, calibration.support))
    assert 200 <= calibration.support <= 210  # it admits the few wrong tickets the target allows, no more
    assert calibration.support == (confidence >= calibration.threshold).sum()
    assert "fixed-sequence over 70 thresholds" in calibration.reason


def test_calibration_stops_at_the_first_threshold_that_fails_even_if_a_lower_one_would_pass():
    # 100 tickets at 0.9 with 10 wrong fail; below them 900 right tickets would lift a lower threshold over 0.95
    confidence = np.r_[np.full(100, 0.9), np.full(900, 0.5)]
    correct = np.r_[np.arange(100) >= 10, np.ones(900, bool)]
    calibration = calibrate_threshold(confidence, correct, target=0.95)
    assert precision_lower(990, 1000) >= 0.95  # a scan of every threshold would have taken 0.5
    assert calibration.threshold is None and "the first tried, 0.90: 90/100 right" in calibration.reason


def test_the_chosen_threshold_misses_the_target_in_at_most_alpha_of_draws():
    # every threshold's true precision is 0.94 < 0.95: any threshold chosen is a false promise
    rng = np.random.default_rng(0)
    chosen = [calibrate_threshold(rng.random(400), rng.random(400) < 0.94).threshold is not None for _ in range(400)]
    assert np.mean(chosen) <= 0.05


def test_calibration_refuses_when_no_threshold_is_precise_enough():
    rng = np.random.default_rng(0)
    calibration = calibrate_threshold(rng.random(300), rng.random(300) < 0.8, target=0.95)
    assert calibration.threshold is None and "no threshold has precision >= 0.95" in calibration.reason


def test_calibration_refuses_on_too_few_tickets_to_prove_the_target_and_handles_ties():
    refused = calibrate_threshold(np.ones(58), np.ones(58, bool), min_support=30)
    assert refused.threshold is None and "< 59 needed" in refused.reason
    tied = calibrate_threshold(np.r_[np.ones(100), np.full(100, 0.5)], np.r_[np.ones(100, bool), np.zeros(100, bool)])
    assert tied.threshold == 0.51 and tied.support == 100


# ---- cleaning ----------------------------------------------------------------------------------

def test_cleanlab_fixes_most_injected_label_flips(reference):
    gold = generate("baseline", 500, 7, label_noise=0.15, start="2026-04-01T00:00:00Z")
    flipped = gold["topic"] != gold["true_topic"]
    cleaned, disputed, stats = clean_labels(gold, reference)
    kept = gold.loc[~gold["ticket_id"].isin(disputed["ticket_id"])].reset_index(drop=True)
    before = (gold["topic"] == gold["true_topic"]).mean()
    after = (cleaned["topic"].to_numpy() == kept["true_topic"].to_numpy()).mean()
    caught = gold.loc[flipped, "ticket_id"].isin(
        set(cleaned.loc[cleaned["label_origin"] == FIXED, "ticket_id"]) | set(disputed["ticket_id"])).mean()
    assert after >= before + 0.08, (before, after)
    assert caught >= 0.7
    assert stats["gold_issues"] == stats["gold_fixed"] + stats["gold_disputed"] and stats["gold"] == 500


# ---- relabel -----------------------------------------------------------------------------------

def test_pseudo_labels_are_at_least_95_percent_precise_against_the_truth(reference):
    window = _window("new_product", 2500, 5, labelled=0.4)
    result = relabel(window, reference, RelabelSettings(pseudo_precision=0.95))
    truth = window.set_index("text")["true_topic"].groupby(level=0).first()
    pseudo = result.train.loc[result.train["label_origin"] == PSEUDO]
    assert len(pseudo) >= 500, result.stats
    assert (pseudo["topic"].to_numpy() == truth.loc[pseudo["text"]].to_numpy()).mean() >= 0.95
    assert result.stats["pseudo_precision_lower"] >= 0.95 and result.stats["pseudo_verified"]
    assert "checked on" in result.stats["calibration"] and "which proves" in result.stats["calibration"]
    assert result.stats["pseudo"] + result.stats["review"] - result.stats["gold_disputed"] == (
        result.stats["unlabelled"])


def test_nothing_is_pseudo_labelled_unless_the_untouched_agents_labels_prove_the_threshold(reference):
    # 15% wrong clicks: cleaning makes the choosing split agree with the model, the raw gold does not
    window = _window("new_product", 2500, 5, labelled=0.4, noise=0.15)
    result = relabel(window, reference, RelabelSettings(pseudo_precision=0.95))
    assert result.stats["pseudo_threshold"] is not None and result.stats["pseudo_precision_chosen"] >= 0.95
    assert not result.stats["pseudo_verified"] and result.stats["pseudo"] == 0
    hits = round(result.stats["pseudo_precision"] * result.stats["pseudo_verified_support"])
    assert precision_lower(hits, result.stats["pseudo_verified_support"]) < 0.95
    assert "does not prove (nothing pseudo-labelled)" in result.stats["calibration"]
    assert result.stats["review"] - result.stats["gold_disputed"] == result.stats["unlabelled"]


def test_holdout_is_untouched_gold_never_cleaned_nor_trained_on_and_review_queue_holds_the_rest(reference):
    window = _window("outage", 1200, 6, labelled=0.5, noise=0.1)
    result = relabel(window, reference, RelabelSettings())
    assert set(result.holdout["ticket_id"]).isdisjoint(result.train["ticket_id"])
    given = window.set_index("ticket_id")["label"]
    assert (result.holdout["topic"].to_numpy() == given.loc[result.holdout["ticket_id"]].to_numpy()).all()
    assert len(result.holdout) == pytest.approx(0.3 * (len(result.holdout) + result.stats["gold"]), abs=2)
    assert result.stats["gold_fixed"] > 0  # cleaning happened, on the other gold only
    assert list(result.review.columns) == list(REVIEW_COLUMNS)
    assert result.review["confidence"].is_monotonic_increasing  # least confident first


def test_a_label_pattern_the_champion_contradicts_is_quarantined_and_never_trained_on(reference):
    champion = baseline_pipeline(0).fit(reference[["text"]], reference["topic"])
    window = _window("baseline", 1500, 11, labelled=0.5)
    poisoned = window["label"].notna() & window["topic"].eq("network")
    window.loc[poisoned, "label"] = "billing"
    result = relabel(window, reference, RelabelSettings(), champion=champion, guards=FeedbackSettings())
    assert [p.name for p in result.patterns] == ["network->billing"]
    assert window.loc[poisoned, "ticket_id"].isin(result.quarantined["ticket_id"]).all()
    held = result.quarantined  # besides the poison: only billing labels the champion does not confidently give
    sure_billing = held["suggested_topic"].eq("billing") & (held["confidence"] >= FeedbackSettings().pattern_confidence)
    assert held["topic"].eq("billing").all() and not sure_billing.any()
    assert held["pattern"].eq("network->billing").all()
    assert set(result.quarantined["ticket_id"]).isdisjoint(result.train["ticket_id"])
    confirmed = relabel(window, reference, RelabelSettings(), champion=champion,
                        guards=FeedbackSettings(confirmed_patterns="network->billing"))
    assert confirmed.patterns == [] and len(confirmed.quarantined) == 0


def test_too_few_gold_labels_means_no_pseudo_labels_and_everything_to_review(reference):
    window = _window("baseline", 400, 8, labelled=0.05)
    result = relabel(window, reference, RelabelSettings(min_gold=50))
    assert result.stats["pseudo"] == 0 and len(result.holdout) == 0
    assert result.stats["review"] == result.stats["unlabelled"]
    assert "gold labels < 50" in result.stats["calibration"]


def test_a_rare_unknown_label_is_dropped_but_a_frequent_new_one_is_kept(reference):
    window = _window("baseline", 600, 9, labelled=0.0)
    window.loc[:1, "label"] = "netwrk"  # a typo, twice
    window.loc[2:80, "label"] = "security"  # a topic the champion never had
    window.loc[81:200, "label"] = window.loc[81:200, "topic"]
    result = relabel(window, reference, RelabelSettings())
    assert result.stats["rare_unknown_labels_dropped"] == 2
    labels = set(result.train["topic"]) | set(result.holdout["topic"])
    assert "security" in labels and "netwrk" not in labels


def test_review_queue_is_written_atomically_as_csv(tmp_path, reference):
    result = relabel(_window("baseline", 300, 10, labelled=0.0), reference, RelabelSettings())
    path = write_review_queue(result.review, tmp_path / "reports" / "review_queue.csv")
    assert pd.read_csv(path).shape == (300, len(REVIEW_COLUMNS))
    assert [p.name for p in path.parent.iterdir()] == ["review_queue.csv"]


def test_late_labels_pass_the_same_quarantine_and_cleaning_and_never_the_holdout(reference):
    champion = baseline_pipeline(0).fit(reference[["text"]], reference["topic"])
    window = _window("baseline", 1200, 21, labelled=0.5)  # this window's own feedback is honest
    earlier = generate("baseline", 1000, 22, start="2026-03-01T00:00:00Z")
    earlier = earlier.assign(request_id=[f"early-{i}" for i in range(len(earlier))])
    poisoned = earlier["topic"].eq("network")  # sent after its window was read: every network ticket -> billing
    late = earlier.assign(label=earlier["topic"].where(~poisoned, "billing"), label_source="late-desk")

    result = relabel(window, reference, RelabelSettings(), champion=champion, guards=FeedbackSettings(), late=late)

    assert [p.name for p in result.patterns] == ["network->billing"]
    held = result.quarantined.loc[result.quarantined["late"]]
    assert set(late.loc[poisoned, "request_id"]) <= set(held["request_id"])  # every poisoned late label is held
    trained = result.train.loc[result.train["late"].astype(bool)]
    assert not trained["request_id"].isin(late.loc[poisoned, "request_id"]).any()
    honest = set(late.loc[~poisoned & late["label"].ne("billing"), "request_id"])  # billing ones are held with it
    assert honest <= set(trained["request_id"]) | set(result.review["request_id"])  # trained, or disputed for review
    assert len(honest & set(trained["request_id"])) >= 0.95 * len(honest)
    assert not result.holdout["request_id"].isin(late["request_id"]).any()  # late labels never gate
    s = result.stats
    assert s["late_judged"] == len(late) and s["window"] == len(window)
    assert s["late_accepted"] == len(trained) and s["late_quarantined"] == len(held)
    assert s["late_accepted"] + s["late_quarantined"] + s["late_disputed"] <= len(late)
