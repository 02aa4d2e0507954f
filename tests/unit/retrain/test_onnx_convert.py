"""The ONNX export computes what scikit-learn computes: the TF-IDF rows of Unicode words and char_wb grams, every
candidate classifier's probabilities, and both heads of a two-head model (its urgent threshold included), compared
with the fitted model itself on the same texts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from load_test.simulate.generator import generate
from retrain.ml.automl import served_pipeline
from retrain.ml.candidates import CANDIDATES
from retrain.ml.features import WORD, WORD_CHAR, make_features, text_pipeline
from retrain.ml.onnx_convert import (
    MAX_PROBABILITY_DIFF,
    MIN_SAME_LABEL,
    OnnxScorer,
    Parity,
    features_model,
    parity,
    to_onnx,
)
from retrain.ml.onnx_text import Unconvertible
from ticket_ab.twohead import URGENT, TwoHeadModel, decide_priority

pytestmark = pytest.mark.slow  # fits and converts models: `make test` runs it, `make check` does not

# What tickets hold: punctuation, digits, error codes, versions, mixed case, Cyrillic, tabs and newlines, a
# one-letter word, an empty ticket, underscores, e-mail addresses, non-breaking and repeated spaces.
TRICKY = [
    "Outlook: ВЛОЖЕНИЯ не открываются, ошибка 0x80070005 since v3.14.2!!",
    "VPN down?? Can't connect (error 809) -- tried 3x, WiFi OK.",
    "Счёт №4411 оплачен дважды; верните деньги, пожалуйста",
    "a b c\tprinter\nJAM on floor 2 ... ПРИНТЕР не печатает",
    "",
    "   leading and trailing   ",
    "mixed_CASE_tokens and e-mail j.doe@example.com\xa0nbsp\u2003em-space",
    "ёлка Ёлка ЁЛКА iPhone IPHONE",
]


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return generate("baseline", 600, 3, ru_share=0.3)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [*TRICKY, *generate("baseline", 200, 9, ru_share=0.5)["text"]]


def onnx_rows(features, texts: list[str]) -> np.ndarray:
    model, _ = features_model(features)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"text": np.asarray(texts, dtype=object)})[0]


@pytest.mark.parametrize("kind", [WORD, WORD_CHAR])
def test_onnx_tfidf_rows_equal_sklearns_on_english_and_russian_texts(kind, tickets, texts):
    features = make_features(kind).fit([*tickets["text"], *TRICKY])
    want = features.transform(texts).toarray()
    got = onnx_rows(features, texts)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (got[:len(TRICKY)] > 0).sum() == (want[:len(TRICKY)] > 0).sum()  # the same grams, not just close values


def test_char_wb_grams_of_one_letter_words_and_whitespace_runs_match():
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 6), dtype=np.float32).fit(TRICKY)
    np.testing.assert_allclose(onnx_rows(vectorizer, TRICKY), vectorizer.transform(TRICKY).toarray(),
                               rtol=1e-5, atol=1e-6)


def test_union_weights_scale_each_part(tickets):
    union = FeatureUnion([("word", make_features(WORD)), ("char", make_features(WORD_CHAR).transformer_list[1][1])],
                         transformer_weights={"char": 0.5}).fit(tickets["text"])
    np.testing.assert_allclose(onnx_rows(union, TRICKY), union.transform(TRICKY).toarray(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("candidate", sorted(CANDIDATES))
def test_every_candidate_classifier_converts_and_agrees(candidate, tickets, texts):
    pipeline = served_pipeline(candidate).fit(tickets[["text"]], tickets["topic"])
    scorer = OnnxScorer(to_onnx(pipeline).SerializeToString())
    checked = parity(pipeline, scorer, texts)
    want = pipeline.predict_proba(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(scorer.probabilities(texts), want, atol=1e-6)
    assert checked.same_topic == 1.0 and checked.max_probability_diff <= MAX_PROBABILITY_DIFF and checked.passes


class Oracle(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has never heard of."""

    def fit(self, X, y):  # noqa: N803
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):  # noqa: N803
        return np.full((X.shape[0], len(self.classes_)), 1 / len(self.classes_))


@pytest.mark.parametrize(("vectorizer", "named"), [
    (TfidfVectorizer(analyzer="char"), "features: analyzer 'char' has no ONNX converter"),
    (TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)),
     "features: char_wb ngram_range starting at 1 has no ONNX converter (2 or 3: single characters count the "
     "padding per word, longer ones pad short words)"),
    (TfidfVectorizer(token_pattern=r"\w+"), "features: token_pattern '\\\\w+' has no ONNX converter"),
    (TfidfVectorizer(stop_words="english"), "features: TfidfVectorizer options without an ONNX converter (stop_words)"),
])
def test_a_feature_part_without_converter_is_named(vectorizer, named, tickets):
    pipeline = text_pipeline(Oracle())
    pipeline.steps[0][1].transformers[0] = ("tfidf", vectorizer, "text")
    pipeline.fit(tickets[["text"]], tickets["topic"])
    with pytest.raises(Unconvertible) as raised:
        to_onnx(pipeline)
    assert str(raised.value).startswith(named)


def test_a_classifier_without_converter_is_named(tickets):
    pipeline = text_pipeline(Oracle()).fit(tickets[["text"]], tickets["topic"])
    with pytest.raises(Unconvertible, match=r"^clf: Oracle has no ONNX converter"):
        to_onnx(pipeline)


def test_a_model_of_another_shape_is_named(tickets):
    bare = make_features(WORD).fit(tickets["text"])
    with pytest.raises(Unconvertible, match=r"^model: TfidfVectorizer is not the served Pipeline"):
        to_onnx(bare)


def two_head(tickets: pd.DataFrame, priority_head: str | None, topic_head: str = "lr_wc",
             urgent_threshold: float | None = None) -> TwoHeadModel:
    """A TwoHeadModel as training builds one: the topic candidate's features and head, another candidate's head for
    the priority (None: no priority labels given, the head is skipped)."""
    topic = served_pipeline(topic_head)
    head = None if priority_head is None else served_pipeline(priority_head).named_steps["clf"]
    model = TwoHeadModel(topic.named_steps["features"], topic.named_steps["clf"], head, urgent_threshold)
    return model.fit(tickets[["text"]], tickets["topic"], priority=None if head is None else tickets["priority"])


def onnx_outputs(model, texts: list[str]) -> dict[str, np.ndarray]:
    return OnnxScorer(to_onnx(model).SerializeToString()).run(texts)


@pytest.mark.parametrize("priority_head", ["lr_wc", "svm_wc"])  # logistic regression; calibrated LinearSVC
def test_two_head_graph_answers_both_heads_as_the_model_does(priority_head, tickets, texts):
    model = two_head(tickets, priority_head)
    got = onnx_outputs(model, texts)
    assert list(got) == ["label", "probabilities", "priority_label", "priority_probabilities"]
    topic, priority = model.predict_both(pd.DataFrame({"text": texts}))
    np.testing.assert_allclose(got["probabilities"], topic, atol=1e-6)
    np.testing.assert_allclose(got["priority_probabilities"], priority, atol=1e-6)
    assert list(got["label"]) == list(model.predict(pd.DataFrame({"text": texts})))
    assert list(got["priority_label"]) == list(model.predict_priority(pd.DataFrame({"text": texts})))
    checked = parity(model, OnnxScorer(to_onnx(model).SerializeToString()), texts)
    assert checked.same_topic == 1.0 and checked.same_priority == 1.0 and checked.passes
    assert checked.max_priority_probability_diff <= MAX_PROBABILITY_DIFF


def test_urgent_threshold_is_applied_inside_the_graph(tickets, texts):
    model = two_head(tickets, "svm_wc")
    _, priority = model.predict_both(pd.DataFrame({"text": texts}))
    p_urgent = priority[:, list(model.priority_classes_).index(URGENT)]
    argmax = decide_priority(priority, model.priority_classes_)
    model.urgent_threshold = float(np.quantile(p_urgent[argmax != URGENT], 0.8))  # flips a fifth of the others
    want = model.predict_priority(pd.DataFrame({"text": texts}))
    assert (want == URGENT).sum() > (argmax == URGENT).sum()  # the threshold matters on these texts
    got = onnx_outputs(model, texts)
    assert list(got["priority_label"]) == list(want)
    assert parity(model, OnnxScorer(to_onnx(model).SerializeToString()), texts).same_priority == 1.0
    assert {p.key: p.value for p in to_onnx(model).metadata_props}["urgent_threshold"] == str(model.urgent_threshold)


def test_a_two_head_model_without_priority_head_exports_the_topic_only(tickets, texts):
    model = two_head(tickets, None)
    assert model.priority_ is None
    got = onnx_outputs(model, texts)
    assert list(got) == ["label", "probabilities"]
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(pd.DataFrame({"text": texts})), atol=1e-6)
    checked = parity(model, OnnxScorer(to_onnx(model).SerializeToString()), texts)
    assert checked.same_priority is None and checked.max_priority_probability_diff is None and checked.passes
    assert "priorities" not in str(checked)


def test_a_plain_pipeline_exports_the_topic_only(tickets, texts):
    pipeline = served_pipeline("svm_wc").fit(tickets[["text"]], tickets["topic"])
    scorer = OnnxScorer(to_onnx(pipeline).SerializeToString())
    assert scorer.outputs == ("label", "probabilities") and scorer.both(texts[:3])[1] is None
    checked = parity(pipeline, scorer, texts)
    assert checked.same_topic == 1.0 and checked.same_priority is None and checked.passes


def test_a_priority_head_without_converter_is_named(tickets):
    model = two_head(tickets, "lr_wc")
    model.priority_ = Oracle().fit(None, tickets["priority"])
    with pytest.raises(Unconvertible, match=r"^priority\.clf: Oracle has no ONNX converter"):
        to_onnx(model)


@pytest.mark.parametrize(("same", "diff", "passes"), [
    (MIN_SAME_LABEL, MAX_PROBABILITY_DIFF, True),
    (MIN_SAME_LABEL - 0.0005, 0.0, False),
    (1.0, MAX_PROBABILITY_DIFF * 1.01, False),
])
def test_parity_bar_is_both_figures_at_once(same, diff, passes):
    checked = Parity(2000, same, diff)
    assert checked.passes is passes
    assert ("meets the bar" if passes else "FAILS the bar") in str(checked)


@pytest.mark.parametrize(("same", "diff", "passes"), [
    (MIN_SAME_LABEL, MAX_PROBABILITY_DIFF, True),
    (MIN_SAME_LABEL - 0.0005, 0.0, False),
    (1.0, MAX_PROBABILITY_DIFF * 1.01, False),
])
def test_parity_bar_holds_for_the_priority_head_too(same, diff, passes):
    checked = Parity(2000, 1.0, 0.0, same, diff)
    assert checked.passes is passes
    assert ("meets the bar for each head" if passes else "FAILS the bar for each head") in str(checked)
    assert f"{same:.2%} identical priorities, max priority probability difference {diff:.2e}" in str(checked)
