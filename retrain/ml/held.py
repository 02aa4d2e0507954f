"""Topics the quarantine held back, judged without their labels.

A quarantined pattern (`network->billing`, see `retrain.ml.patterns`) takes both of its topics'
drifted labels out of the window: the source topic's were turned into the other (the poison), and
the target's unsure ones are held with it. The untouched gold then has no say on those topics on
current traffic (its labels were held too), and the trusted set is old traffic, so a challenger
can stop recognising a held topic's new phrasing and still pass both. What is left to judge it
by is label-free, on the window's own tickets, against the champion on the same tickets:

- *share*: the challenger must still give the topic to at least `share` times as many window
  tickets as the champion does. Learning the drift legitimately moves a share (the champion
  over-calls a topic whose new words it half knows); abandoning the topic moves it much further;
- *agreement*: on the window tickets the champion gives the topic with the confidence the
  quarantine trusts (TICKET_AB_FEEDBACK_PATTERN_CONFIDENCE), the challenger must agree on at least
  `agreement` of them: there the champion is as good as a label.

A topic the champion gives to fewer than `min_rows` window tickets (or confidently to fewer, for
the second check) is not judged on that check, and the details say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from retrain.ml.patterns import ARROW


@dataclass(frozen=True)
class HeldCheck:
    """One held topic on the window: how often each model gives it, and the agreement where the champion is sure."""

    topic: str
    champion_tickets: int  # window tickets the champion gives the topic
    candidate_tickets: int  # ... the challenger gives it
    share: float | None  # candidate_tickets / champion_tickets (None: too few to judge)
    confident_tickets: int  # window tickets the champion gives it with the trusted confidence
    agreement: float | None  # share of those the challenger gives it too (None: too few to judge)
    failures: tuple[str, ...]

    @property
    def abandoned(self) -> bool:
        return bool(self.failures)

    def __str__(self) -> str:
        return f"held topic '{self.topic}' abandoned: " + "; ".join(self.failures)


def held_topics(patterns: Iterable[str]) -> list[str]:
    """Both topics of each quarantined pattern (`network->billing: ...` or `network->billing`)."""
    return sorted({topic.strip() for p in patterns for topic in p.split(":")[0].split(ARROW) if topic.strip()})


def judge_held(topics: Iterable[str], champion: np.ndarray, confidence: np.ndarray, candidate: np.ndarray, *,
               share: float, agreement: float, sure: float, min_rows: int) -> list[HeldCheck]:
    """Each held topic's two label-free checks on the window (per-ticket answers of both models)."""
    champion, candidate = np.asarray(champion, dtype=str), np.asarray(candidate, dtype=str)
    confident = np.asarray(confidence, dtype=float) >= sure
    checks = []
    for topic in topics:
        given, gets = champion == topic, candidate == topic
        ratio = float(gets.sum() / given.sum()) if given.sum() >= min_rows else None
        mask = given & confident
        agreed = float(gets[mask].mean()) if mask.sum() >= min_rows else None
        failures = []
        if ratio is not None and ratio < share:
            failures.append(f"the challenger gives it to {int(gets.sum())} window tickets, the champion to "
                            f"{int(given.sum())} ({ratio:.2f} < {share:.2f})")
        if agreed is not None and agreed < agreement:
            failures.append(f"of the {int(mask.sum())} window tickets the champion gives it with confidence >= "
                            f"{sure:.2f}, the challenger agrees on {agreed:.2f} (< {agreement:.2f})")
        checks.append(HeldCheck(topic, int(given.sum()), int(gets.sum()), ratio, int(mask.sum()), agreed,
                                tuple(failures)))
    return checks
