"""AutoML selection and the served pipeline's contract, on a tiny real dataset."""

import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from load_test.simulate.generator import generate
from retrain.ml.automl import AutoMLError, TextModel, fold_calibrated, select_model, served_pipeline, with_probabilities
from retrain.ml.candidates import CANDIDATES
from retrain.ml.features import WORD_CHAR, text_pipeline
from router.predictor import TFIDF, compile_scorer, pipeline_scorer

pytestmark = pytest.mark.slow  # fits models: `make test` runs it, `make check` does not


@pytest.fixture(scope="module")
def selected(tiny_tickets):
    return select_model(tiny_tickets, candidates=["svm", "nb"], folds=3, seed=0)


def test_winner_is_one_of_the_candidates_and_leaderboard_ranks_both(selected):
    assert selected.winner in {"svm", "nb"}
    assert set(selected.leaderboard["candidate"]) == {"svm", "nb"}
    assert selected.leaderboard["Macro F1"].is_monotonic_decreasing


def test_macro_f1_is_really_computed(selected):
    # PyCaret silently reports 0.0 for a custom metric that raises; ours must be a real score.
    assert 0.5 < selected.cv_macro_f1 <= 1.0


def test_served_pipeline_predicts_one_label_per_row_of_a_frame(selected):
    frame = pd.DataFrame({"text": ["vpn offline again", "invoice charged twice", "laptop screen broken"]})
    predictions = selected.pipeline.predict(frame)
    assert len(predictions) == 3
    assert list(predictions) == ["network", "billing", "hardware"]


def test_served_pipeline_has_probabilities_over_topic_names(selected):
    proba = selected.pipeline.predict_proba(pd.DataFrame({"text": ["password locked"]}))
    assert list(selected.pipeline.classes_) == ["access", "billing", "hardware", "network"]
    assert proba.shape == (1, 4)
    assert proba.sum() == pytest.approx(1.0)


def test_estimator_without_probabilities_gets_calibrated(tiny_tickets):
    from sklearn.svm import LinearSVC

    pipe = with_probabilities(text_pipeline(LinearSVC(dual="auto")))
    pipe.fit(tiny_tickets[["text"]], tiny_tickets["topic"])
    assert pipe.predict_proba(tiny_tickets[["text"]].head(2)).shape == (2, 4)


def test_unknown_candidate_is_rejected_with_known_names(tiny_tickets):
    with pytest.raises(AutoMLError, match="known: .*lr"):
        select_model(tiny_tickets, candidates=["xgboost-9000"])


def test_topic_too_rare_for_the_folds_is_a_clear_error(tiny_tickets):
    rare = pd.concat([tiny_tickets, pd.DataFrame({"text": ["new thing"], "topic": ["rare"]})])
    with pytest.raises(AutoMLError, match="too few: {'rare': 1}"):
        select_model(rare, candidates=["nb"], folds=3)


@pytest.fixture(scope="module")
def generated_tickets():
    """600 generated tickets: hard enough that the strengths of a grid score differently."""
    return generate("baseline", 600, 3)[["text", "topic"]]


@pytest.fixture(scope="module")
def tuned(generated_tickets):
    return select_model(generated_tickets, candidates=["nb", "svm"], folds=3, tune_min_rows=0, seed=0)


def test_tuning_searches_the_winners_strength_grid_and_serves_plain_scikit_learn_parts(tuned):
    assert set(tuned.tuning) == set(CANDIDATES[tuned.winner].grid)
    assert tuned.strength in CANDIDATES[tuned.winner].grid
    assert tuned.cv_macro_f1 >= max(tuned.leaderboard["Macro F1"]) - 1e-4  # tuning is kept only when it wins
    topic = tuned.pipeline.head_pipeline("topic")
    steps = [type(step).__name__ for _, step in topic.steps]
    assert "TextModel" not in steps and topic.memory is None  # no selection wrapper, no cache


def test_tune_model_scores_equal_a_scikit_learn_grid_search_on_the_same_folds(generated_tickets, tuned):
    grid = list(CANDIDATES[tuned.winner].grid)
    search = GridSearchCV(TextModel(tuned.winner), {"strength": grid}, scoring="f1_macro", cv=StratifiedKFold(3))
    search.fit(generated_tickets[["text"]], generated_tickets["topic"])
    expected = dict(zip(search.cv_results_["param_strength"], search.cv_results_["mean_test_score"], strict=True))
    assert tuned.tuning == pytest.approx(expected)
    assert len(set(expected.values())) > 1  # the grid really moved the score


def test_selection_scores_each_candidate_as_it_is_served_calibration_included(generated_tickets):
    texts, topics = generated_tickets[["text"]], generated_tickets["topic"]
    judged = TextModel("svm", seed=0).fit(texts, topics).predict(texts)
    served = served_pipeline("svm", seed=0).fit(texts, topics)
    raw = served.named_steps["clf"].estimator.fit(served.named_steps["features"].transform(texts), topics)
    assert list(judged) == list(served.predict(texts))
    assert (raw.predict(served.named_steps["features"].transform(texts)) != judged).any()  # calibration moves answers


def test_a_calibrated_candidate_fits_a_selection_fold_where_a_topic_has_two_tickets(tiny_tickets):
    rare = pd.concat([tiny_tickets, pd.DataFrame({"text": ["quantum flux", "flux quantum"], "topic": ["rare"] * 2})])
    with pytest.raises(ValueError):  # what 3-fold calibration does with two tickets of a topic
        served_pipeline("svm").fit(rare[["text"]], rare["topic"])

    model = TextModel("svm").fit(rare[["text"]], rare["topic"])

    assert "rare" in model.classes_ and model.pipeline_.named_steps["clf"].cv == 2


def test_calibration_folds_fit_the_training_part_of_an_outer_fold():
    y = ["rare"] * 3 + ["common"] * 30
    assert fold_calibrated(served_pipeline("svm"), y).named_steps["clf"].cv == 3
    assert fold_calibrated(served_pipeline("svm"), y, outer_folds=3).named_steps["clf"].cv == 2  # 2 of 3 to train


def test_tuning_is_skipped_below_tune_min_rows(selected):
    assert selected.tuning == {} and selected.strength == CANDIDATES[selected.winner].strength


@pytest.mark.parametrize("name", ["lr_wc", "svm_wc", "vote_wc"])
def test_word_char_candidates_serve_through_the_routers_compiled_scorer(tiny_tickets, name):
    pipeline = served_pipeline(name).fit(tiny_tickets[["text"]], tiny_tickets["topic"])
    vectorizer = pipeline.named_steps["features"].transformers_[0][1]
    assert isinstance(vectorizer, FeatureUnion)
    assert [type(v) for _, v in vectorizer.transformer_list] == [TfidfVectorizer, TfidfVectorizer]
    scorer, path = compile_scorer(pipeline)
    assert path == TFIDF
    for text in ["vpn offline again", "invoice charged twice", "Не работает впн", ""]:
        assert scorer(text) == pytest.approx(pipeline_scorer(pipeline)(text))


def test_every_candidate_builds_a_plain_scikit_learn_pipeline():
    for name, spec in CANDIDATES.items():
        pipeline = served_pipeline(name)
        assert isinstance(pipeline, Pipeline) and clone(pipeline) is not None
        assert isinstance(pipeline.named_steps["features"].transformers[0][1], FeatureUnion) == (
            spec.features == WORD_CHAR), name
