"""Which feedback labels a window may use: the log's join rule first, then the guards against poisoning.

Feedback is validated where it is used (the security review's rule): feedback for a request the
window did not read is dropped (a made-up id), unless its request is in the label store (late
feedback for an earlier window's ticket: it waits there, pending, until the next quarantine judges
it with that window's feedback), and a request's last label wins. A source that newly dominates a
window's feedback has its labels quarantined (the other sources' are used, so one source can
neither poison a window nor stall it), and a window whose feedback is dominated by one label is
refused, because that is what poisoning looks like. "Newly" is judged against the sources of the
labels earlier windows used (the watermark carries them as counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ticket_ab.requestlog import latest_labels
from ticket_ab.settings import FeedbackSettings


def guard_feedback(
    feedback: pd.DataFrame,
    known_requests: set[str],
    window_requests: set[str],
    guards: FeedbackSettings,
    history: Mapping[str, int] | None = None,
    stored: set[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The labels this window may use, as (request_id, label, source, late), plus what was dropped and why.

    `stored` are request ids of earlier windows kept in the label store: feedback for them that
    arrives late is returned with `late` True (it waits there, pending, for the next quarantine),
    and judged for dominance with the rest.

    Order matters: the request log's join rule goes first (`latest_labels`: unknown request ids
    cannot be judged, the last label per request wins because agents correct themselves), then only
    this window's labels are judged for dominance, since that is the set that would be trained on.
    `history` counts the sources of earlier windows' labels (`Watermark.feedback_sources`).
    """
    stored = stored or set()
    last, dropped = latest_labels(feedback, set(known_requests) | stored)
    inside = last["request_id"].isin(window_requests)
    late = ~inside & last["request_id"].isin(stored)
    labels = last.loc[inside | late, ["request_id", "label", "source"]].assign(late=late[inside | late])
    labels = labels.reset_index(drop=True)
    stats: dict[str, Any] = {
        "feedback_blank": dropped["blank"],
        "feedback_unknown_request": dropped["unknown_request"],
        "feedback_superseded": dropped["superseded"],
        "feedback_outside_window": int((~inside & ~late).sum()),
        "feedback_late": int(late.sum()),
        "feedback_refused": False,
        "feedback_refused_reasons": [],
    }
    dominant = dominant_source(labels, guards, history)
    if dominant:
        source, reason = dominant
        held = labels["source"].astype(str).eq(source)
        stats.update(feedback_quarantined_source=source, feedback_quarantined_rows=int(held.sum()),
                     feedback_quarantined_reason=reason)
        labels = labels.loc[~held].reset_index(drop=True)
    reasons = [reason for reason in [label_reason(labels, guards)] if reason]
    if reasons:
        stats.update(feedback_refused=True, feedback_refused_reasons=reasons, feedback_refused_rows=len(labels))
        labels = labels.iloc[0:0]
    # what the next windows judge against: only labels that were used, so a flood never becomes the history
    stats["feedback_sources"] = {str(k): int(v) for k, v in labels["source"].value_counts().items()}
    stats["feedback_used"] = int((~labels["late"]).sum())
    return labels, stats


def dominant_source(labels: pd.DataFrame, guards: FeedbackSettings,
                    history: Mapping[str, int] | None = None) -> tuple[str, str] | None:
    """The source that newly dominates this window's labels, and why, or None.

    A source is judged against the earlier feedback (`history`, label counts by source of earlier
    windows): the router's default source is "api", so a deployment where every client leaves it
    out has one source at 100% every day, and that is normal. What is implausible is a source that
    dominates this window but did not dominate before; with no earlier feedback it is not judged.
    Its labels are quarantined (kept out of this window), the other sources' are used: so one
    source can neither poison the window nor, by flooding it, stop it from being processed.
    """
    if len(labels) < guards.min_rows:
        return None
    shares = labels["source"].value_counts(normalize=True)
    source, share = str(shares.index[0]), float(shares.iloc[0])
    total = sum(history.values()) if history else 0
    before = history.get(source, 0) / total if total else None
    if share > guards.max_source_share and before is not None and before <= guards.max_source_share:
        return source, (f"source '{source}' gives {share:.0%} of {len(labels)} feedback labels (limit "
                        f"{guards.max_source_share:.0%}; {before:.0%} of earlier feedback): its labels are quarantined")
    return None


def label_reason(labels: pd.DataFrame, guards: FeedbackSettings) -> str | None:
    """Why this window's feedback is implausible as a whole (one label dominating it), or None."""
    if len(labels) < guards.min_rows:
        return None
    shares = labels["label"].value_counts(normalize=True)
    label, share = str(shares.index[0]), float(shares.iloc[0])
    if share > guards.max_label_share:
        return (f"label '{label}' gives {share:.0%} of {len(labels)} feedback labels "
                f"(limit {guards.max_label_share:.0%}): window feedback refused")
    return None
