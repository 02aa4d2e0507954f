"""The TF-IDF rows of retrain.ml.features as ONNX nodes that match scikit-learn on Unicode text.

skl2onnx's own TfidfVectorizer converter replaces sklearn's Unicode token pattern with an ASCII one
(10% of tickets are Russian) and has no converter for `analyzer="char_wb"` (every `*_wc` candidate).
These builders write the graph from the fitted vocabulary and idf with standard ONNX ops instead:
- lowercase: StringNormalizer with locale `C.UTF-8` (glibc's builtin Unicode locale: onnxruntime's
  default `en_US.UTF-8` is missing on slim images and fails at session start);
- words: Tokenizer with the RE2 spelling of `(?u)\\b\\w\\w+\\b` (maximal runs of >= 2 letters, digits or
  underscores, in any script), then TfIdfVectorizer counts of the vocabulary's 1-2 grams;
- char_wb: `char_wb` pads every whitespace-separated word with one space on both sides and counts its
  character n-grams. A vocabulary gram therefore holds spaces only at its ends, so the same counts come
  from the character n-grams of the whole text with every whitespace character read as one space and a
  space added at both ends (grams crossing a word hold an inner space and are never in the vocabulary;
  this holds for grams of 2 characters and more, and for a shortest gram of at most 3, as sklearn's is).
  Tokenizer splits into characters (marking both ends), LabelEncoder + Where turn the marks and
  whitespace into spaces, TfIdfVectorizer counts the vocabulary's character grams;
- then sublinear tf (1 + log), idf, the l2 norm (an all-zero row stays zero) and FeatureUnion's concat.
Anything else (another analyzer, a custom tokenizer, stop words, accents stripping, binary counts) is
refused with an `Unconvertible` naming the part, never approximated.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
WORD_TOKENS = r"[\p{L}\p{N}_]{2,}"  # RE2 (onnxruntime's Tokenizer): the same tokens as the pattern above
LOCALE = "C.UTF-8"
PAD = "\x01"  # Tokenizer's padding: never part of a vocabulary gram
MARKS = ("\x02", "\x03")  # Tokenizer's start/end marks in character mode: read as the padding spaces
TINY = 1e-30  # norm floor: an empty row divided by it stays zero, as sklearn's normalize leaves it


class Unconvertible(ValueError):
    """A part of the pipeline that has no faithful ONNX form; the message names it."""


@functools.cache
def whitespace() -> tuple[str, ...]:
    """Every character `str.split()` splits on (what `char_wb` separates words by)."""
    return tuple(c for c in map(chr, range(0x110000)) if c.isspace())


def check_vectorizer(vectorizer: Any, name: str) -> None:
    """Refuse (naming `name`) a vectorizer whose analyzer these builders do not reproduce exactly."""
    if type(vectorizer) is not TfidfVectorizer:
        raise Unconvertible(f"{name}: {type(vectorizer).__name__} has no ONNX converter (only TfidfVectorizer)")
    unsupported = {"preprocessor": vectorizer.preprocessor, "tokenizer": vectorizer.tokenizer,
                   "stop_words": vectorizer.stop_words, "strip_accents": vectorizer.strip_accents,
                   "vocabulary (fixed)": vectorizer.vocabulary}
    given = [key for key, value in unsupported.items() if value is not None]
    if given or not vectorizer.lowercase or vectorizer.binary or vectorizer.norm not in ("l2", None):
        raise Unconvertible(f"{name}: TfidfVectorizer options without an ONNX converter "
                            f"({', '.join(given) or 'lowercase=False, binary or l1 norm'})")
    if vectorizer.analyzer == "word" and vectorizer.token_pattern != DEFAULT_TOKEN_PATTERN:
        raise Unconvertible(f"{name}: token_pattern {vectorizer.token_pattern!r} has no ONNX converter "
                            f"(only sklearn's default {DEFAULT_TOKEN_PATTERN!r})")
    if vectorizer.analyzer == "char_wb" and not 2 <= vectorizer.ngram_range[0] <= 3:
        raise Unconvertible(f"{name}: char_wb ngram_range starting at {vectorizer.ngram_range[0]} has no ONNX "
                            "converter (2 or 3: single characters count the padding per word, longer ones pad "
                            "short words)")
    if vectorizer.analyzer not in ("word", "char_wb"):
        raise Unconvertible(f"{name}: analyzer {vectorizer.analyzer!r} has no ONNX converter (word, char_wb)")


class Graph:
    """Nodes and initializers collected under unique names while a graph is built."""

    def __init__(self) -> None:
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str, domain: str = "", **attributes: Any) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, domain=domain, **attributes))
        return out


def _pool(vocabulary: dict[str, int], split) -> dict[str, Any]:
    """TfIdfVectorizer's attributes: the vocabulary's grams grouped by length in tokens, with their columns."""
    grams = sorted(((split(gram), column) for gram, column in vocabulary.items()), key=lambda g: len(g[0]))
    longest = len(grams[-1][0]) if grams else 1
    counts, strings, indexes = [], [], []
    for n in range(1, longest + 1):
        counts.append(len(strings))
        for tokens, column in (g for g in grams if len(g[0]) == n):
            strings.extend(tokens)
            indexes.append(column)
    return {"ngram_counts": counts, "pool_strings": strings, "ngram_indexes": indexes, "max_gram_length": longest}


def _counts(graph: Graph, tokens: str, vectorizer: TfidfVectorizer, split) -> str:
    pool = _pool(vectorizer.vocabulary_, split)
    return graph.op("TfIdfVectorizer", [tokens], "counts", mode="TF", min_gram_length=vectorizer.ngram_range[0],
                    max_skip_count=0, **pool)


def _word_tokens(graph: Graph, lower: str) -> str:
    return graph.op("Tokenizer", [lower], "words", domain="com.microsoft", tokenexp=WORD_TOKENS, mark=0,
                    mincharnum=1, pad_value=PAD)


def _char_wb_tokens(graph: Graph, lower: str) -> str:
    chars = graph.op("Tokenizer", [lower], "chars", domain="com.microsoft", separators=[""], mark=1,
                     mincharnum=1, pad_value=PAD)
    spaces = (*MARKS, *whitespace())
    is_space = graph.op("LabelEncoder", [chars], "is_space", domain="ai.onnx.ml", keys_strings=list(spaces),
                        values_int64s=[1] * len(spaces), default_int64=0)
    as_bool = graph.op("Cast", [is_space], "is_space_bool", to=TensorProto.BOOL)
    return graph.op("Where", [as_bool, graph.const("space", np.array([" "], dtype=object)), chars], "chars_wb")


def _weighting(graph: Graph, counts: str, vectorizer: TfidfVectorizer) -> str:
    """counts -> sublinear tf -> idf -> l2 norm, in float32 as the vectorizer (dtype=float32) computes them."""
    row = counts
    if vectorizer.sublinear_tf:
        zero = graph.const("zero", np.array(0, dtype=np.float32))
        one = graph.const("one", np.array(1, dtype=np.float32))
        positive = graph.op("Greater", [counts, zero], "positive")
        logged = graph.op("Add", [graph.op("Log", [counts], "log"), one], "log1")
        row = graph.op("Where", [positive, logged, zero], "tf")
    if vectorizer.use_idf:
        row = graph.op("Mul", [row, graph.const("idf", vectorizer.idf_.astype(np.float32))], "tfidf")
    if vectorizer.norm == "l2":
        squares = graph.op("ReduceSum", [graph.op("Mul", [row, row], "sq"), graph.const("axis", np.array([1]))],
                           "sumsq", keepdims=1)
        norm = graph.op("Max", [graph.op("Sqrt", [squares], "norm"),
                                graph.const("tiny", np.array(TINY, dtype=np.float32))], "norm_floor")
        row = graph.op("Div", [row, norm], "l2")
    return row


def vectorizer_row(graph: Graph, text: str, vectorizer: TfidfVectorizer, name: str) -> str:
    """The float32 TF-IDF rows [N, len(vocabulary_)] of the strings [N] in `text`."""
    check_vectorizer(vectorizer, name)
    lower = graph.op("StringNormalizer", [text], "lower", case_change_action="LOWER", locale=LOCALE)
    if vectorizer.analyzer == "word":
        counts = _counts(graph, _word_tokens(graph, lower), vectorizer, lambda gram: gram.split(" "))
    else:
        counts = _counts(graph, _char_wb_tokens(graph, lower), vectorizer, list)
    return _weighting(graph, counts, vectorizer)


def features_row(graph: Graph, text: str, features: Any, name: str = "features") -> tuple[str, int]:
    """The rows of one TfidfVectorizer or a FeatureUnion of them (side by side, weighted), and their width."""
    if type(features) is not FeatureUnion:
        return vectorizer_row(graph, text, features, name), len(getattr(features, "vocabulary_", {}))
    weights = features.transformer_weights or {}
    rows, width = [], 0
    for part, vectorizer in features.transformer_list:
        if isinstance(vectorizer, str):
            raise Unconvertible(f"{name}.{part}: a dropped or passthrough union member has no ONNX converter")
        row = vectorizer_row(graph, text, vectorizer, f"{name}.{part}")
        if part in weights:
            row = graph.op("Mul", [row, graph.const("weight", np.array(weights[part], dtype=np.float32))], "w")
        rows.append(row)
        width += len(vectorizer.vocabulary_)
    return graph.op("Concat", rows, "union", axis=1), width
