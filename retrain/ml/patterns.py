"""Feedback label patterns the champion contradicts: one topic systematically turned into another.

Agents' mistakes are scattered: a wrong click sends a ticket to any other topic. A poisoned feed,
or a broken integration, is systematic: tickets the champion is sure are `network` arrive labelled
`billing`, again and again, spread over sources so that no source or label dominates. So a pair
(champion's topic -> feedback label) is suspicious when, among the feedback on tickets the champion
is confident about for that topic, the pair covers a large share with enough rows. Its rows (all
of them, confident or not) are quarantined: reported and kept out of training until an operator
confirms the pattern (TICKET_AB_FEEDBACK_CONFIRMED_PATTERNS), e.g. after a real reorganisation.

So is every other row with the pattern's label, unless the champion confidently gives that label
too. A drifted window is full of tickets the champion cannot read (new vocabulary): there it does
not answer `network` confidently, so it cannot tell a poisoned `billing` from a true one, and those
are exactly the tickets where a challenger would learn network -> billing (even where the champion
guessed `billing`, unsure: nothing else in the window teaches the new words). Poison can then only
train where the champion is already sure of `billing`, which teaches nothing new. The honest
labels held with it go to the review queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ticket_ab.pii import mask
from ticket_ab.schema import TEXT
from ticket_ab.settings import FeedbackSettings

ARROW = "->"


@dataclass(frozen=True)
class Pattern:
    predicted: str  # what the champion says
    label: str  # what the feedback says
    confident_rows: int  # feedback on tickets the champion confidently calls `predicted` with this label
    share: float  # ... out of all feedback on tickets it confidently calls `predicted`
    rows: int  # feedback rows quarantined for it: every row with `label` the champion does not confidently give

    @property
    def name(self) -> str:
        return f"{self.predicted}{ARROW}{self.label}"

    def __str__(self) -> str:
        return (f"{self.name}: {self.confident_rows} labels ({self.share:.0%}) on tickets the champion confidently "
                f"calls '{self.predicted}' say '{self.label}'; {self.rows} feedback rows quarantined")


def confirmed(setting: str) -> set[str]:
    """`network->billing, a->b` as {"network->billing", "a->b"}."""
    return {"".join(part.split()) for part in setting.split(",") if part.strip()}


def champion_view(champion: Any, texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(topic, confidence) of the champion for each text, masked as it was trained."""
    probs = champion.predict_proba(pd.DataFrame({TEXT: texts.map(mask)}))
    return np.asarray(champion.classes_)[probs.argmax(axis=1)].astype(str), probs.max(axis=1)


def find_patterns(labels: np.ndarray, predicted: np.ndarray, confidence: np.ndarray,
                  guards: FeedbackSettings) -> tuple[np.ndarray, list[Pattern]]:
    """(per row: the name of the pattern that quarantines it, "" for none; the suspicious patterns)
    among feedback `labels` given the champion's view."""
    labels, predicted = np.asarray(labels, dtype=str), np.asarray(predicted, dtype=str)
    sure = np.asarray(confidence, dtype=float) >= guards.pattern_confidence
    frame = pd.DataFrame({"predicted": predicted, "label": labels, "sure": sure})
    contradicted = frame.loc[sure & (labels != predicted)]
    base = frame.loc[sure, "predicted"].value_counts()
    allowed = confirmed(guards.confirmed_patterns)
    quarantine = np.full(len(labels), "", dtype=object)
    patterns = []
    for (topic, label), count in contradicted.groupby(["predicted", "label"]).size().items():
        share = count / base[topic]
        if count < guards.pattern_min_rows or share < guards.pattern_share or f"{topic}{ARROW}{label}" in allowed:
            continue
        rows = (labels == label) & ~(sure & (predicted == label)) & (quarantine == "")
        quarantine[rows] = f"{topic}{ARROW}{label}"
        patterns.append(Pattern(str(topic), str(label), int(count), float(share), int(rows.sum())))
    return quarantine, sorted(patterns, key=lambda p: -p.rows)
