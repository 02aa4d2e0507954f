"""Which feedback labels a window may use: the log's join rule first, then the guards against poisoning.

Feedback is validated where it is used (the security review's rule): feedback for a request the
window did not read is dropped (a made-up id), unless its request is in the label store (late
feedback for an earlier window's ticket: it waits there, pending, until the next quarantine judges
it with that window's feedback), and a request's last label wins. A source that newly dominates a
window's feedback has its labels quarantined (the other sources' are used, so one source can
neither poison a window nor stall it), and a window whose feedback is dominated by one label is
refused, because that is what poisoning looks like. "Newly" is judged against the sources of the
labels earlier windows used (the watermark carries them as counts). Priorities (feedback may correct only the
priority) are judged the same way, apart (one priority may reach `max_priority_share`, higher than a label's limit:
an outage makes most tickets urgent): a flood of priorities refuses priorities only, never a topic label, and
against a history of their own (the sources of the priorities earlier windows used), because the integration
that sends priorities (a triage tool) need not be one that sends topics.
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
    priority_history: Mapping[str, int] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The labels this window may use, as (request_id, label, source, priority, late), plus what was dropped and why.

    `stored` are request ids of earlier windows kept in the label store: feedback for them that
    arrives late is returned with `late` True (it waits there, pending, for the next quarantine),
    and judged for dominance with the rest.

    Order matters: the request log's join rule goes first (`latest_labels`: unknown request ids
    cannot be judged, the last label per request wins because agents correct themselves), then only
    this window's labels are judged for dominance, since that is the set that would be trained on.
    `history` counts the sources of earlier windows' topic labels (`Watermark.feedback_sources`),
    `priority_history` those of their priorities (`Watermark.feedback_priority_sources`; empty for a watermark
    written before it, so the priorities are not judged for a new source until a window has recorded some).
    Topic labels and priorities are judged apart, each among the rows that give one, by the same guards: a
    flood of one refuses that field only, and a request keeps the other ('' where a field is refused or was
    never given; `source` is the topic label's, else the priority's). The topic figures are those of a log
    without priorities.
    """
    stored = stored or set()
    last, dropped = latest_labels(feedback, set(known_requests) | stored)
    inside = last["request_id"].isin(window_requests)
    late = ~inside & last["request_id"].isin(stored)
    labels = last.loc[inside | late, ["request_id", "label", "source", "priority", "priority_source"]]
    labels = labels.assign(late=late[inside | late]).reset_index(drop=True)
    stats: dict[str, Any] = {
        "feedback_blank": dropped["blank"],
        "feedback_unknown_request": dropped["unknown_request"],
        "feedback_superseded": dropped["superseded"],
        "feedback_outside_window": int((~inside & ~late).sum()),
        "feedback_late": int(late.sum()),
        "feedback_refused": False,
        "feedback_refused_reasons": [],
        "feedback_priority_refused": False,
        "feedback_priority_refused_reasons": [],
    }
    labels = _guarded(labels, "label", "source", guards, history, stats, "feedback")
    labels = _guarded(labels, "priority", "priority_source", guards, priority_history, stats, "feedback_priority")
    labels = labels.loc[labels["label"].ne("") | labels["priority"].ne("")].reset_index(drop=True)
    labels["source"] = labels["source"].where(labels["label"].ne(""), labels["priority_source"])
    topics = labels.loc[labels["label"].ne("")]
    # what the next windows judge against: only labels that were used, so a flood never becomes the history
    stats["feedback_sources"] = {str(k): int(v) for k, v in topics["source"].value_counts().items()}
    given = labels.loc[labels["priority"].ne(""), "priority_source"]
    stats["feedback_priority_sources"] = {str(k): int(v) for k, v in given.value_counts().items()}
    stats["feedback_used"] = int((~topics["late"]).sum())
    stats["feedback_priority_used"] = int((~labels["late"] & labels["priority"].ne("")).sum())
    return labels.drop(columns="priority_source"), stats


def _guarded(labels: pd.DataFrame, field: str, source: str, guards: FeedbackSettings,
             history: Mapping[str, int] | None, stats: dict[str, Any], prefix: str) -> pd.DataFrame:
    """`labels` with `field` blanked where the guards refuse it, judged among the rows giving one: a newly dominant
    source's values quarantined, then all of them refused when one value dominates the rest; said in `stats` under
    `prefix` (`feedback`: the topic labels' keys as before priorities; `feedback_priority`: the priorities')."""
    given = labels[field].ne("")
    judged = labels.loc[given, [field, source]].rename(columns={field: "label", source: "source"})
    what = "feedback labels" if field == "label" else "priority labels"
    dominant = dominant_source(judged, guards, history, what)
    if dominant:
        name, reason = dominant
        held = given & labels[source].astype(str).eq(name)
        stats.update({f"{prefix}_quarantined_source": name, f"{prefix}_quarantined_rows": int(held.sum()),
                      f"{prefix}_quarantined_reason": reason})
        labels = labels.assign(**{field: labels[field].where(~held, "")})
        given, judged = given & ~held, judged.loc[~held[given].to_numpy()]
    limit = guards.max_label_share if field == "label" else guards.max_priority_share
    reason = label_reason(judged, guards, what, limit)
    if reason:
        stats.update({f"{prefix}_refused": True, f"{prefix}_refused_reasons": [reason],
                      f"{prefix}_refused_rows": int(given.sum())})
        labels = labels.assign(**{field: labels[field].where(~given, "")})
    return labels


def dominant_source(labels: pd.DataFrame, guards: FeedbackSettings, history: Mapping[str, int] | None = None,
                    what: str = "feedback labels") -> tuple[str, str] | None:
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
        return source, (f"source '{source}' gives {share:.0%} of {len(labels)} {what} (limit "
                        f"{guards.max_source_share:.0%}; {before:.0%} of earlier feedback): its labels are quarantined")
    return None


def label_reason(labels: pd.DataFrame, guards: FeedbackSettings, what: str = "feedback labels",
                 limit: float | None = None) -> str | None:
    """Why this window's feedback is implausible as a whole (one label above `limit`, by default `max_label_share`,
    dominating it), or None. Priorities have a limit of their own (`max_priority_share`): in an outage most tickets
    really are urgent, while no real window is mostly one topic."""
    limit = guards.max_label_share if limit is None else limit
    if len(labels) < guards.min_rows:
        return None
    shares = labels["label"].value_counts(normalize=True)
    label, share = str(shares.index[0]), float(shares.iloc[0])
    if share > limit:
        refused = "window feedback refused" if what == "feedback labels" else f"the window's {what} refused"
        return f"label '{label}' gives {share:.0%} of {len(labels)} {what} (limit {limit:.0%}): {refused}"
    return None
