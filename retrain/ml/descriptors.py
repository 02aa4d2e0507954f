"""What the drift checks see in a ticket, as Evidently descriptors: length, script, words the champion never saw.

Evidently computes every per-ticket column (`Dataset.from_pandas(..., descriptors=...)`): its own
`TextLength`, and two `CustomColumnDescriptor`s for what it has no descriptor for. Its
`OOVWordsPercentage` counts words missing from an English dictionary (nltk, downloaded at run
time, blind to Russian), not words missing from the champion's training tickets, and it has no
language descriptor. The functions behind those two are pure pandas/numpy and tested alone.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from evidently.core.datasets import DatasetColumn
from evidently.descriptors import CustomColumnDescriptor, TextLength

from ticket_ab.pii import mask
from ticket_ab.schema import TEXT

RAW = "raw_text"  # the ticket as logged (the script is read from it)
LANGUAGE = "language"
LENGTH = "length"
OOV = "oov_share"  # per ticket: share of its words outside the reference vocabulary

_TOKEN = re.compile(r"[^\W\d_]{2,}")
_NUMBER = re.compile(r"\+?\d(?:[\d ().,/:-]*\d)?|\[(?:phone|card)\]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)


def normalize_text(texts: pd.Series) -> pd.Series:
    """Lower-case with PII masked and numbers folded, as the drift checks see text.

    Dates, ticket numbers and amounts change every day: unfolded, the domain classifier tells a
    baseline window from its own reference a month later (measured AUC 0.54-0.56); folded, 0.50.
    Masking again is a no-op on the router's already-masked log and makes dropped raw files alike.
    """
    folded = texts.fillna("").astype(str).map(mask).str.lower()
    return folded.str.replace(_NUMBER, " number ", regex=True)


def tokens(text: str) -> list[str]:
    """Words of two or more letters (any script): codes and numbers are not vocabulary."""
    return _TOKEN.findall(text.lower())


def language_of(texts: pd.Series) -> np.ndarray:
    """'ru' when a ticket has more Cyrillic than Latin letters, else 'en' (the router logs no language)."""
    values = texts.fillna("").astype(str)
    cyr = values.str.count(_CYRILLIC.pattern).to_numpy()
    lat = values.str.count(_LATIN.pattern).to_numpy()
    return np.where(cyr > lat, "ru", "en")


class CrossFitted:
    """The reference vocabulary in two random halves, so reference and window rows are scored alike.

    Each reference row is scored against the half it is not in, window rows alternate between the
    halves. Scoring the reference against its own vocabulary would always give 0.
    """

    def __init__(self, reference: pd.Series, seed: int = 0) -> None:
        ref_tokens = [tokens(t) for t in reference.fillna("").astype(str)]
        order = np.random.default_rng(seed).permutation(len(ref_tokens))
        half = np.zeros(len(ref_tokens), dtype=int)
        half[order[len(order) // 2:]] = 1
        self.vocabularies: tuple[set[str], set[str]] = (set(), set())
        for toks, h in zip(ref_tokens, half, strict=True):
            self.vocabularies[h].update(toks)
        self.reference_against = 1 - half

    def shares(self, texts: pd.Series, reference: bool) -> np.ndarray:
        """Per-ticket share of words outside the vocabulary the ticket is scored against."""
        against = self.reference_against if reference else np.arange(len(texts)) % 2
        return np.array([_share_outside(tokens(t), self.vocabularies[a])
                         for t, a in zip(texts.fillna("").astype(str), against, strict=True)])

    def descriptor(self, reference: bool) -> CustomColumnDescriptor:
        """Evidently descriptor of the per-ticket OOV share for the reference or the window side."""
        def oov(column: DatasetColumn) -> DatasetColumn:
            return DatasetColumn("num", pd.Series(self.shares(column.data, reference), index=column.data.index))

        return CustomColumnDescriptor(TEXT, oov, alias=OOV)


def _share_outside(toks: list[str], vocab: set[str]) -> float:
    return float(sum(t not in vocab for t in toks) / len(toks)) if toks else 0.0


def token_weighted(shares: np.ndarray, texts: pd.Series) -> float:
    """Aggregate per-row shares weighted by token count: the share of all tokens that are new."""
    counts = np.array([len(tokens(t)) for t in texts.fillna("").astype(str)], dtype=float)
    return float((shares * counts).sum() / counts.sum()) if counts.sum() else 0.0


def _language(column: DatasetColumn) -> DatasetColumn:
    return DatasetColumn("cat", pd.Series(language_of(column.data), index=column.data.index))


def ticket_descriptors(vocabulary: CrossFitted, reference: bool) -> list:
    """The descriptors of one side: length and OOV share of the normalized text, script of the raw one."""
    return [TextLength(TEXT, alias=LENGTH), CustomColumnDescriptor(RAW, _language, alias=LANGUAGE),
            vocabulary.descriptor(reference)]
