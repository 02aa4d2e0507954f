"""The served model as one ONNX graph, scored by onnxruntime, and its parity with scikit-learn.

The graph takes the ticket texts (a 1-D string tensor named `text`) and answers `label` and
`probabilities` (float64, in `classes_` order): the topic. A two-head version (`ticket_ab.twohead.
TwoHeadModel` with a priority head) answers `priority_label` and `priority_probabilities` too, from the
same TF-IDF nodes (the text is vectorized once, as the model does), each head's classifier under a name
prefix of its own. Its `urgent_threshold` is part of the graph (`urgent` whenever that probability reaches
it, else the classifier's label: `ticket_ab.twohead.decide_priority`), so another runtime serves the same
priorities without knowing the rule. The classes and the threshold are also in the model's metadata.
The TF-IDF part is built by retrain.ml.onnx_text (Unicode words and char_wb grams, which skl2onnx's own
converter gets wrong or lacks); each classifier is skl2onnx's converter (LinearSVC, SGD, LR, Ridge, NB,
CalibratedClassifierCV, soft voting) fed the features as float64, the dtype scikit-learn's linear models
compute in, so the probabilities differ from scikit-learn's by float rounding only. Pure conversion: the
router never imports this module.
"""

from __future__ import annotations

import copy
import json
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
from ticket_ab.twohead import PRIORITY_HEAD, TOPIC_HEAD, URGENT, TwoHeadModel, answers, heads_of, probabilities

OPSETS = {"": 21, "ai.onnx.ml": 3}
CONTRIB = "com.microsoft"  # onnxruntime's domain of the Tokenizer op
IR_VERSION = 10  # what onnxruntime 1.2x reads
FEATURES = "features"
LABEL, PROBABILITIES = "label", "probabilities"
PRIORITY_LABEL, PRIORITY_PROBABILITIES = "priority_label", "priority_probabilities"
OUTPUTS = {TOPIC_HEAD: (LABEL, PROBABILITIES), PRIORITY_HEAD: (PRIORITY_LABEL, PRIORITY_PROBABILITIES)}
MIN_SAME_LABEL = 0.995  # issue 26's parity bar, per head: share of tickets given the same label by both runtimes
MAX_PROBABILITY_DIFF = 1e-4  # and the largest difference of any class probability, for each head


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


def served_heads(model: Any) -> tuple[Any, dict[str, Any]]:
    """(features, {head: classifier}): a plain Pipeline or a TwoHeadModel whose priority head was skipped has the
    topic head only; a TwoHeadModel's heads share its fitted features."""
    if not isinstance(model, TwoHeadModel):
        features, clf = served_parts(model)
        return features, {TOPIC_HEAD: clf}
    features, topic = served_parts(model.head_pipeline(TOPIC_HEAD))
    heads = {TOPIC_HEAD: topic}
    if PRIORITY_HEAD in heads_of(model):
        heads[PRIORITY_HEAD] = model.priority_
    return features, heads


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


def classifier_model(clf: Any, width: int, name: str = "clf") -> onnx.ModelProto:
    """skl2onnx's converter of the classifier on float64 rows, probabilities as a plain tensor (no ZipMap)."""
    clf = _convertible(clf)
    try:
        model = convert_sklearn(clf, initial_types=[(FEATURES, DoubleTensorType([None, width]))],
                                target_opset=dict(OPSETS), options={id(clf): {"zipmap": False}})
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, MissingShapeCalculator, ...
        raise Unconvertible(f"{name}: {type(clf).__name__} has no ONNX converter "
                            f"({str(exc).splitlines()[0]})") from None
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


def _head_name(head: str, single: bool) -> str:
    """How an error names a classifier: `clf` in a one-head model (as before), `topic.clf`/`priority.clf` else."""
    return "clf" if single else f"{head}.clf"


def _merged(front: onnx.ModelProto, backs: dict[str, onnx.ModelProto]) -> onnx.ModelProto:
    """The features graph feeding every head's classifier (names prefixed `<head>_clf_`), with the heads' outputs
    renamed to OUTPUTS (skl2onnx's order: label, probabilities); the features stay internal."""
    model, heads = front, list(backs)
    for head in heads:
        back = backs[head]
        keep = [o.name for o in model.graph.output if o.name != FEATURES or head != heads[-1]]
        keep += [f"{head}_clf_{o.name}" for o in back.graph.output]
        model = onnx.compose.merge_models(model, back, io_map=[(FEATURES, FEATURES)], prefix2=f"{head}_clf_",
                                          outputs=keep)
    outputs = list(model.graph.output)
    del model.graph.output[:]
    names = [name for head in heads for name in OUTPUTS[head]]
    for output, name in zip(outputs, names, strict=True):
        model.graph.node.append(helper.make_node("Identity", [output.name], [name], name=f"out_{name}"))
        output.name = name
        model.graph.output.append(output)
    return model


def _with_threshold(model: onnx.ModelProto, classes: Sequence[str], threshold: float | None) -> None:
    """`priority_label` becomes `urgent` wherever P(urgent) >= threshold, else the classifier's label: the graph
    form of `decide_priority` (which likewise ignores a threshold when `urgent` is not a class)."""
    if threshold is None or URGENT not in classes:
        return
    nodes = list(model.graph.node)
    out = next(i for i, node in enumerate(nodes) if node.output[0] == PRIORITY_LABEL)
    proba = next(node.input[0] for node in nodes if node.output[0] == PRIORITY_PROBABILITIES)
    kind = next(o for o in model.graph.output if o.name == PRIORITY_PROBABILITIES).type.tensor_type.elem_type
    graph = Graph()
    index = graph.const("threshold_index", np.array(list(classes).index(URGENT)))
    urgent = graph.op("Gather", [proba, index], "threshold_p_urgent", axis=1)
    at = graph.const("threshold_at", np.array(threshold, dtype=helper.tensor_dtype_to_np_dtype(kind)))
    reached = graph.op("GreaterOrEqual", [urgent, at], "threshold_reached")
    word = graph.const("threshold_urgent", np.array([URGENT], dtype=object))
    label = graph.op("Where", [reached, word, nodes[out].input[0]], "threshold_label")
    nodes[out].input[0] = label
    del model.graph.node[:]
    model.graph.node.extend([*nodes[:out], *graph.nodes, *nodes[out:]])  # topological order
    model.graph.initializer.extend(graph.initializers)


def _describe(model: onnx.ModelProto, served: Any, heads: dict[str, Any]) -> None:
    """The classes of each output (in column order) and the urgent threshold, for whoever serves the file."""
    meta = {"topic_classes": json.dumps([str(c) for c in heads[TOPIC_HEAD].classes_])}
    if PRIORITY_HEAD in heads:
        meta["priority_classes"] = json.dumps([str(c) for c in heads[PRIORITY_HEAD].classes_])
        meta["urgent_threshold"] = json.dumps(served.urgent_threshold)
    helper.set_model_props(model, meta)


def to_onnx(model: Any) -> onnx.ModelProto:
    """The whole served model as one checked ONNX model; Unconvertible names the part that has no converter."""
    features, heads = served_heads(model)
    front, width = features_model(features)
    backs = {head: classifier_model(clf, width, _head_name(head, len(heads) == 1)) for head, clf in heads.items()}
    _same_opsets(front, *backs.values())
    merged = _merged(front, backs)
    if PRIORITY_HEAD in heads:
        _with_threshold(merged, [str(c) for c in heads[PRIORITY_HEAD].classes_], model.urgent_threshold)
    _describe(merged, model, heads)
    merged.producer_name = "ticket-ab"
    onnx.checker.check_model(merged)
    return merged


class OnnxScorer:
    """An onnxruntime session over the exported model: class probabilities (and labels) of many texts at once."""

    def __init__(self, model: bytes, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: skl2onnx leaves unused initializers that ORT warns about
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.outputs = tuple(output.name for output in self.session.get_outputs())

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """The topic probabilities."""
        return self.session.run([PROBABILITIES], {TEXT: np.asarray(list(texts), dtype=object)})[0]

    def both(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(topic probabilities, priority probabilities or None for a one-head graph), in one run."""
        if PRIORITY_PROBABILITIES not in self.outputs:
            return self.probabilities(texts), None
        topic, priority = self.session.run([PROBABILITIES, PRIORITY_PROBABILITIES],
                                           {TEXT: np.asarray(list(texts), dtype=object)})
        return topic, priority

    def run(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Every output of the graph by name (labels and probabilities of each head)."""
        got = self.session.run(list(self.outputs), {TEXT: np.asarray(list(texts), dtype=object)})
        return dict(zip(self.outputs, got, strict=True))


@dataclass(frozen=True)
class Parity:
    """How the two runtimes agree on the same tickets (the priority figures None: a one-head model)."""

    n: int
    same_topic: float  # share of tickets with the same topic label
    max_probability_diff: float  # largest absolute difference of any topic probability
    same_priority: float | None = None  # share of tickets with the same priority label (urgent threshold applied)
    max_priority_probability_diff: float | None = None  # largest absolute difference of any priority probability

    @property
    def passes(self) -> bool:
        """The bar holds for each head the model has."""
        heads = [(self.same_topic, self.max_probability_diff)]
        if self.same_priority is not None:
            heads.append((self.same_priority, self.max_priority_probability_diff))
        return all(same >= MIN_SAME_LABEL and diff <= MAX_PROBABILITY_DIFF for same, diff in heads)

    def __str__(self) -> str:
        verdict = "meets" if self.passes else "FAILS"
        priority = "" if self.same_priority is None else (
            f" and {self.same_priority:.2%} identical priorities, max priority probability difference "
            f"{self.max_priority_probability_diff:.2e}")
        each = "" if self.same_priority is None else " for each head"
        return (f"parity on {self.n} tickets: {self.same_topic:.2%} identical topics, max probability difference "
                f"{self.max_probability_diff:.2e}{priority} ({verdict} the bar{each}: >= {MIN_SAME_LABEL:.1%} and "
                f"<= {MAX_PROBABILITY_DIFF:.0e})")


def _agreement(want_labels: np.ndarray, got_labels: np.ndarray, want: np.ndarray,
               got: np.ndarray) -> tuple[float, float]:
    """(share of identical labels, largest absolute probability difference)."""
    same = float(np.mean(np.asarray(want_labels, dtype=str) == np.asarray(got_labels, dtype=str))) if len(want) else 1.0
    return same, float(np.abs(want - got).max(initial=0.0))


def parity(model: Any, scorer: OnnxScorer, texts: Sequence[str]) -> Parity:
    """The registered model (scikit-learn) vs onnxruntime on the same texts, per head: the labels each serves
    (the topic's argmax; the priority by `decide_priority`, its urgent threshold included) and the probabilities."""
    frame = pd.DataFrame({TEXT: list(texts)})
    got = scorer.run(texts)
    want, want_priority = probabilities(model, frame)
    topics, priorities = answers(model, want, want_priority)
    topic = _agreement(topics, got[LABEL], want, got[PROBABILITIES])
    if priorities is None:
        return Parity(len(texts), *topic)
    priority = _agreement(priorities, got[PRIORITY_LABEL], want_priority, got[PRIORITY_PROBABILITIES])
    return Parity(len(texts), *topic, *priority)
