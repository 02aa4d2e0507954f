"""The served pipeline as one ONNX graph, scored by onnxruntime, and its parity with scikit-learn.

The graph takes the ticket texts (a 1-D string tensor named `text`) and answers `label` and
`probabilities` (float64, in `classes_` order). The TF-IDF part is built by retrain.ml.onnx_text
(Unicode words and char_wb grams, which skl2onnx's own converter gets wrong or lacks); the classifier
is skl2onnx's converter (LinearSVC, SGD, LR, Ridge, NB, CalibratedClassifierCV, soft voting) fed the
features as float64, the dtype scikit-learn's linear models compute in, so the probabilities differ
from scikit-learn's by float rounding only. Pure conversion: the router never imports this module.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingClassifier
from sklearn.pipeline import Pipeline

from retrain.ml.onnx_text import Graph, Unconvertible, features_row
from ticket_ab.schema import TEXT

OPSETS = {"": 21, "ai.onnx.ml": 3}
CONTRIB = "com.microsoft"  # onnxruntime's domain of the Tokenizer op
IR_VERSION = 10  # what onnxruntime 1.2x reads
FEATURES = "features"
LABEL, PROBABILITIES = "label", "probabilities"
MIN_SAME_TOPIC = 0.995  # issue 26's parity bar: share of tickets with the same topic in both runtimes
MAX_PROBABILITY_DIFF = 1e-4  # and the largest difference of any class probability


def served_parts(pipeline: Any) -> tuple[Any, Any]:
    """(features, classifier) of `Pipeline(ColumnTransformer([(name, features, "text")]), clf)`; else Unconvertible."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise Unconvertible(f"model: {type(pipeline).__name__} is not the served Pipeline(features, clf) shape")
    columns = pipeline.steps[0][1]
    if not isinstance(columns, ColumnTransformer):
        raise Unconvertible(f"features: {type(columns).__name__} has no ONNX converter (expected ColumnTransformer)")
    active = [(name, step, column) for name, step, column in columns.transformers_
              if not (isinstance(step, str) and step == "drop")]
    if len(active) != 1 or active[0][2] != TEXT or isinstance(active[0][1], str):
        raise Unconvertible(f"features: only one transformer on the {TEXT!r} column converts, got {active!r}")
    return active[0][1], pipeline.steps[-1][1]


def features_model(features: Any) -> tuple[onnx.ModelProto, int]:
    """Texts [N] -> float64 TF-IDF rows [N, width]."""
    graph = Graph()
    row, width = features_row(graph, TEXT, features)
    cast = graph.op("Cast", [row], "features64", to=TensorProto.DOUBLE)
    graph.nodes.append(helper.make_node("Identity", [cast], [FEATURES], name="features_out"))
    body = helper.make_graph(graph.nodes, "tfidf", [helper.make_tensor_value_info(TEXT, TensorProto.STRING, [None])],
                             [helper.make_tensor_value_info(FEATURES, TensorProto.DOUBLE, [None, width])],
                             graph.initializers)
    opsets = [helper.make_opsetid(domain, version) for domain, version in {**OPSETS, CONTRIB: 1}.items()]
    return helper.make_model(body, opset_imports=opsets, ir_version=IR_VERSION), width


def _convertible(clf: Any) -> Any:
    """skl2onnx refuses a VotingClassifier with `flatten_transform` (the default), which only shapes `transform`'s
    output, never `predict_proba`: a shallow copy without it converts to the same probabilities."""
    if isinstance(clf, VotingClassifier) and clf.flatten_transform:
        clf = copy.copy(clf)
        clf.flatten_transform = False
    return clf


def classifier_model(clf: Any, width: int) -> onnx.ModelProto:
    """skl2onnx's converter of the classifier on float64 rows, probabilities as a plain tensor (no ZipMap)."""
    clf = _convertible(clf)
    try:
        model = convert_sklearn(clf, initial_types=[(FEATURES, DoubleTensorType([None, width]))],
                                target_opset=dict(OPSETS), options={id(clf): {"zipmap": False}})
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, MissingShapeCalculator, ...
        raise Unconvertible(f"clf: {type(clf).__name__} has no ONNX converter ({str(exc).splitlines()[0]})") from None
    model.ir_version = IR_VERSION
    return model


def _same_opsets(*models: onnx.ModelProto) -> None:
    """Each domain at the highest version any part imports (an op keeps its meaning in later domain versions)."""
    versions: dict[str, int] = {}
    for model in models:
        for opset in model.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    for model in models:
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in versions.items())


def to_onnx(pipeline: Any) -> onnx.ModelProto:
    """The whole served pipeline as one checked ONNX model; Unconvertible names the part that has no converter."""
    features, clf = served_parts(pipeline)
    front, width = features_model(features)
    back = classifier_model(clf, width)
    _same_opsets(front, back)
    model = onnx.compose.merge_models(front, back, io_map=[(FEATURES, FEATURES)], prefix2="clf_")
    outputs = list(model.graph.output)
    del model.graph.output[:]
    for output, name in zip(outputs, (LABEL, PROBABILITIES), strict=True):  # skl2onnx's order: label, probabilities
        model.graph.node.append(helper.make_node("Identity", [output.name], [name], name=f"out_{name}"))
        output.name = name
        model.graph.output.append(output)
    model.producer_name = "ticket-ab"
    onnx.checker.check_model(model)
    return model


class OnnxScorer:
    """An onnxruntime session over the exported model: class probabilities of many texts at once."""

    def __init__(self, model: bytes, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: skl2onnx leaves unused initializers that ORT warns about
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.session.run([PROBABILITIES], {TEXT: np.asarray(list(texts), dtype=object)})[0]


@dataclass(frozen=True)
class Parity:
    """How the two runtimes agree on the same tickets."""

    n: int
    same_topic: float  # share of tickets whose most probable topic is the same
    max_probability_diff: float  # largest absolute difference of any class probability

    @property
    def passes(self) -> bool:
        return self.same_topic >= MIN_SAME_TOPIC and self.max_probability_diff <= MAX_PROBABILITY_DIFF

    def __str__(self) -> str:
        verdict = "meets" if self.passes else "FAILS"
        return (f"parity on {self.n} tickets: {self.same_topic:.2%} identical topics, max probability difference "
                f"{self.max_probability_diff:.2e} ({verdict} the bar: >= {MIN_SAME_TOPIC:.1%} and "
                f"<= {MAX_PROBABILITY_DIFF:.0e})")


def parity(pipeline: Any, scorer: OnnxScorer, texts: Sequence[str]) -> Parity:
    """scikit-learn's `predict_proba` (the registered pipeline) vs onnxruntime on the same texts."""
    want = pipeline.predict_proba(pd.DataFrame({TEXT: list(texts)}))
    got = scorer.probabilities(texts)
    same = float(np.mean(want.argmax(axis=1) == got.argmax(axis=1))) if len(texts) else 1.0
    return Parity(len(texts), same, float(np.abs(want - got).max(initial=0.0)))
