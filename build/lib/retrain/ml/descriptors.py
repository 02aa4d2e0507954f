"""What the drift checks see in a ticket: normalized text, its words, its script, its new words.

Pure pandas/numpy, shared by the drift measurement and its tests; no Evidently here.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from retrain.contracts.pii import mask

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


def oov_shares(reference: pd.Series, window: pd.Series, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-ticket share of tokens outside the reference vocabulary, for reference and window rows.

    Cross-fitted so both sides are scored the same way: the reference is split in two halves, each
    reference row is scored against the other half's vocabulary and window rows alternate between
    the two. Scoring the reference against its own vocabulary would always give 0.
    """
    ref_tokens = [tokens(t) for t in reference.fillna("").astype(str)]
    order = np.random.default_rng(seed).permutation(len(ref_tokens))
    half = np.zeros(len(ref_tokens), dtype=int)
    half[order[len(order) // 2:]] = 1
    vocab = [set(), set()]
    for toks, h in zip(ref_tokens, half, strict=True):
        vocab[h].update(toks)
    ref_scores = np.array([_share_outside(toks, vocab[1 - h]) for toks, h in zip(ref_tokens, half, strict=True)])
    win_scores = np.array([_share_outside(tokens(t), vocab[i % 2])
                           for i, t in enumerate(window.fillna("").astype(str))])
    return ref_scores, win_scores


def _share_outside(toks: list[str], vocab: set[str]) -> float:
    return float(sum(t not in vocab for t in toks) / len(toks)) if toks else 0.0


def token_weighted(shares: np.ndarray, texts: pd.Series) -> float:
    """Aggregate per-row shares weighted by token count: the share of all tokens that are new."""
    counts = np.array([len(tokens(t)) for t in texts.fillna("").astype(str)], dtype=float)
    return float((shares * counts).sum() / counts.sum()) if counts.sum() else 0.0
