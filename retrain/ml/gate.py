"""The quality gate: a candidate only becomes `challenger` if, with stated confidence, it is not worse.

Four questions, each on data the candidate never trained on:

1. *Current traffic*: on the window's untouched gold (agents' labels held out before any cleaning),
   is the candidate's accuracy gain over the champion above `-margin` with `confidence`? The
   interval is clustered by customer, the unit the router randomises on: tickets of one customer
   are alike, so counting them as independent would make the gate surer than it is.
2. *Every topic*: on a trusted set no feedback of this window shaped (the champion's own held-out
   data, carried from version to version), does the candidate keep each topic's recall within
   `topic_margin` of the champion's? Overall accuracy can rise while one topic is taught to be
   another (feedback poisoning); this check names that topic.
3. *Held topics*: a topic whose window labels the quarantine held has no gold on current traffic,
   so it is judged without labels on the window's tickets the candidate was not trained on
   (`retrain.ml.held`): a candidate that stopped recognising it fails, and the reason names it.
4. *Priority*: when both versions answer a priority, on the same held-out tickets that have one:
   - urgent tickets predicted `low`, judged per customer like the topic gain: the paired per-ticket indicator
     (urgent and predicted low) on the held-out urgent tickets, candidate minus champion, with its
     customer-clustered interval (`clustered_gain`). The candidate fails when the one-sided lower bound at
     `gate_confidence` is above `gate_urgent_low_margin`: its share of urgent tickets read as low is shown to
     exceed the champion's by more than the margin. A rise of a ticket or two, or one customer's burst of
     alike tickets, is not such evidence (the A/B report's urgent-missed guardrail then watches it live).
     With fewer than `gate_urgent_min_rows` held-out urgent tickets it is reported, not judged.
   - priority macro-F1 (over the priorities the tickets have): a point check, no interval; the candidate
     fails when it trails the champion's by more than `gate_priority_margin`.
   With fewer held-out priorities than TICKET_AB_MIN_HOLDOUT the priority cannot be judged: reported, never
   failed (priority labels arrive sparsely; they must not block every topic improvement). A champion without
   a priority head has nothing to compare with: the candidate's figures are reported. A candidate without
   one against a champion with one fails only when its training data could train one (at least 2
   priorities, each with TICKET_AB_AUTOML_FOLDS tickets: the selection's own bar), i.e. the head was lost
   rather than impossible; a draw without enough priorities is reported, or every retrain would fail.

Too little untouched gold is a failed gate with that reason, never a pass by default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm

from retrain.ml.held import HeldCheck, judge_held
from retrain.ml.priority import LOW, PriorityScores, priority_scores
from ticket_ab.settings import Settings, TrainingSettings
from ticket_ab.twohead import URGENT


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Gain:
    """The candidate's accuracy minus the champion's on the same tickets, with a clustered bound."""

    n: int
    clusters: int
    gain: float
    lower: float  # one-sided lower bound at `confidence`
    upper: float  # one-sided upper bound at `confidence`
    confidence: float


@dataclass(frozen=True)
class TopicRegression:
    topic: str
    n: int
    champion_recall: float
    candidate_recall: float

    def __str__(self) -> str:
        return (f"topic '{self.topic}' recall {self.candidate_recall:.3f} vs champion {self.champion_recall:.3f} "
                f"on {self.n} trusted tickets")


def clustered_gain(candidate_correct: np.ndarray, champion_correct: np.ndarray, clusters: np.ndarray,
                   confidence: float) -> Gain:
    """Mean paired difference (candidate - champion) with a cluster-robust (CR1) standard error.

    An intercept-only OLS of the per-ticket difference is the paired mean; statsmodels' cluster
    covariance makes its interval honest when one customer sends many similar tickets.
    """
    diff = np.asarray(candidate_correct, dtype=float) - np.asarray(champion_correct, dtype=float)
    groups = pd.factorize(pd.Series(clusters).astype(str))[0]
    n, k = len(diff), int(groups.max()) + 1 if len(groups) else 0
    if n == 0 or k < 2 or not diff.any():
        gain = float(diff.mean()) if n else float("nan")
        return Gain(n, k, gain, gain, gain, confidence)
    fit = sm.OLS(diff, np.ones((n, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups})
    low, high = fit.conf_int(alpha=2 * (1 - confidence))[0]
    return Gain(n, k, float(fit.params[0]), float(low), float(high), confidence)


def topic_regressions(y_true: np.ndarray, champion_pred: np.ndarray, candidate_pred: np.ndarray, *,
                      margin: float, min_rows: int) -> tuple[list[TopicRegression], dict[str, dict[str, float]]]:
    """Topics whose recall drops by more than `margin`, and every judged topic's two recalls."""
    y_true, champion_pred, candidate_pred = (np.asarray(a, dtype=str)
                                             for a in (y_true, champion_pred, candidate_pred))
    regressions, recalls = [], {}
    for topic in sorted(set(y_true)):
        rows = y_true == topic
        if rows.sum() < min_rows:
            continue
        before, after = float((champion_pred[rows] == topic).mean()), float((candidate_pred[rows] == topic).mean())
        recalls[topic] = {"n": int(rows.sum()), "champion": round(before, 4), "candidate": round(after, 4)}
        if after < before - margin:
            regressions.append(TopicRegression(topic, int(rows.sum()), before, after))
    return regressions, recalls


@dataclass(frozen=True)
class Evidence:
    """Per-ticket answers of both models: on the untouched gold (with customers) and on the trusted set."""

    gold_true: np.ndarray
    gold_candidate: np.ndarray
    gold_champion: np.ndarray | None
    customers: np.ndarray
    trusted_true: np.ndarray | None = None
    trusted_candidate: np.ndarray | None = None
    trusted_champion: np.ndarray | None = None
    trusted_source: str = "none"
    held_topics: tuple[str, ...] = ()  # topics whose window labels were quarantined
    window_champion: np.ndarray | None = None  # the champion's answer on every window ticket
    window_confidence: np.ndarray | None = None  # ... and its confidence
    window_candidate: np.ndarray | None = None  # the candidate's answer on the same tickets
    priority_true: np.ndarray | None = None  # the held-out tickets' priorities (those that have one)
    priority_candidate: np.ndarray | None = None  # the candidate's on the same tickets (None: no priority head)
    priority_champion: np.ndarray | None = None  # the champion's (None: no priority head)
    candidate_priority_note: str = ""  # why the candidate has no priority head
    candidate_priority_trainable: bool = False  # its training data could train a priority head
    priority_customers: np.ndarray | None = None  # the customer of each priority ticket (None: each its own)


@dataclass(frozen=True)
class PriorityCheck:
    """The gate's priority question: what failed (empty: nothing), one line for the reason, the figures."""

    failures: tuple[str, ...]
    summary: str
    details: dict[str, Any]


def priority_check(evidence: Evidence, settings: Settings) -> PriorityCheck | None:
    """Judge the priority heads on the same held-out tickets (None: neither version answers a priority)."""
    truth, candidate, champion = evidence.priority_true, evidence.priority_candidate, evidence.priority_champion
    if truth is None or (candidate is None and champion is None):
        return None
    if candidate is None:
        return _without_head(evidence)
    mine = priority_scores(truth, candidate)
    if champion is None:
        return PriorityCheck((), f"priority macro-F1 {mine.macro_f1:.4f} on {mine.n} held-out tickets (reported: "
                             "the champion has no priority head)", {"candidate": _figures(mine)})
    theirs = priority_scores(truth, champion)
    details = {"candidate": _figures(mine), "champion": _figures(theirs)}
    training, min_gold = settings.training, settings.relabel.min_holdout
    if mine.n < min_gold:
        return PriorityCheck((), f"priority cannot be judged: {mine.n} held-out tickets with a priority < {min_gold} "
                             "(TICKET_AB_MIN_HOLDOUT), reported only", details)
    failures, lines = [], [f"priority macro-F1 {mine.macro_f1:.4f} vs champion {theirs.macro_f1:.4f} on {mine.n} "
                           f"tickets (a point check, margin {training.gate_priority_margin:.4f})"]
    if mine.macro_f1 < theirs.macro_f1 - training.gate_priority_margin:
        failures.append(lines[0])
    line, failed, gain = _urgent_as_low(evidence, mine, theirs, training)
    lines.append(line)
    if failed:
        failures.append(f"{line}: more urgent tickets read as low than the champion, beyond the margin")
    details["urgent_as_low_gain"] = None if gain is None else asdict(gain)
    return PriorityCheck(tuple(failures), "; ".join(lines), details)


def _without_head(evidence: Evidence) -> PriorityCheck:
    """A candidate without a priority head against a champion with one: failed only when the head was lost."""
    note = evidence.candidate_priority_note or "skipped"
    details = {"champion": _figures(priority_scores(evidence.priority_true, evidence.priority_champion)),
               "candidate_priority_trainable": evidence.candidate_priority_trainable}
    if evidence.candidate_priority_trainable:
        why = (f"the challenger has no priority head ({note}) although its training data could train one, and the "
               "champion answers priorities: a retrain must not drop a head")
        return PriorityCheck((why,), why, details)
    return PriorityCheck((), f"priority cannot be judged: the challenger has no priority head ({note}) and its "
                         "training data cannot train one (2 priorities, each with TICKET_AB_AUTOML_FOLDS tickets); "
                         "reported only, the champion's head is not held against it", details)


def _urgent_as_low(evidence: Evidence, mine: PriorityScores, theirs: PriorityScores,
                   training: TrainingSettings) -> tuple[str, bool, Gain | None]:
    """(the reason's line, failed?, the clustered difference): urgent tickets read as low, judged per customer."""
    line = (f"urgent predicted low {mine.urgent_as_low_count} vs champion {theirs.urgent_as_low_count} of "
            f"{mine.urgent_n} urgent tickets")
    if mine.urgent_n < training.gate_urgent_min_rows:
        return f"{line} (reported only: fewer than {training.gate_urgent_min_rows})", False, None
    truth = np.asarray(evidence.priority_true, dtype=str)
    customers = evidence.priority_customers
    if customers is None:
        customers = np.array([f"ticket-{i}" for i in range(len(truth))])
    urgent = truth == URGENT
    candidate, champion = (np.asarray(a, dtype=str)[urgent] for a in (evidence.priority_candidate,
                                                                       evidence.priority_champion))
    gain = clustered_gain(candidate == LOW, champion == LOW, np.asarray(customers)[urgent], training.gate_confidence)
    margin = training.gate_urgent_low_margin
    failed = gain.lower > margin
    return (f"{line} ({gain.clusters} customers): share {gain.gain:+.4f}, {gain.confidence:.0%} lower bound "
            f"{gain.lower:+.4f} {'>' if failed else '<='} {margin:.4f}"), failed, gain


def _figures(scores: PriorityScores) -> dict[str, float | int]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.as_dict().items()}


def quality_gate(evidence: Evidence, settings: Settings) -> GateResult:
    """Pass when there is no champion, or when both the clustered gain and every topic's recall hold."""
    training, min_gold = settings.training, settings.relabel.min_holdout
    n = len(evidence.gold_true)
    if evidence.gold_champion is None:
        accuracy = _acc(evidence.gold_candidate, evidence.gold_true)
        return GateResult(True, f"no champion to beat; candidate accuracy {accuracy:.4f} on {n} held-out tickets",
                          {"holdout_rows": n})
    if n < min_gold:
        return GateResult(False, f"too little untouched gold: {n} held-out tickets < {min_gold} "
                          "(TICKET_AB_MIN_HOLDOUT); the gate cannot judge, so it does not pass", {"holdout_rows": n})
    gain = clustered_gain(evidence.gold_candidate == evidence.gold_true, evidence.gold_champion == evidence.gold_true,
                          evidence.customers, training.gate_confidence)
    regressions, recalls = [], {}
    if evidence.trusted_true is not None and len(evidence.trusted_true):
        regressions, recalls = topic_regressions(evidence.trusted_true, evidence.trusted_champion,
                                                 evidence.trusted_candidate, margin=training.gate_topic_margin,
                                                 min_rows=training.gate_topic_min_rows)
    held = held_checks(evidence, settings)
    priority = priority_check(evidence, settings)
    details = {"holdout_rows": n, "gain": asdict(gain), "margin": training.gate_margin,
               "trusted_source": evidence.trusted_source,
               "trusted_rows": 0 if evidence.trusted_true is None else len(evidence.trusted_true),
               "topic_recall": recalls, "topic_margin": training.gate_topic_margin,
               "topic_regressions": [asdict(r) for r in regressions],
               "held_topics": [asdict(c) for c in held], "held_share": training.gate_held_share,
               "held_agreement": training.gate_held_agreement,
               "priority": None if priority is None else {"failures": list(priority.failures), **priority.details}}
    abandoned = [c for c in held if c.abandoned]
    failed_priority = priority is not None and bool(priority.failures)
    passed = gain.lower >= -training.gate_margin and not regressions and not abandoned and not failed_priority
    reason = _reason(gain, regressions, abandoned, training.gate_margin)
    if priority is not None:
        reason += "; " + ("priority FAILED: " + "; ".join(priority.failures) if failed_priority else priority.summary)
    return GateResult(passed, reason, details)


def held_checks(evidence: Evidence, settings: Settings) -> list[HeldCheck]:
    """The label-free checks of the held topics on the window (none without them or the window's answers)."""
    if not evidence.held_topics or evidence.window_champion is None or evidence.window_candidate is None:
        return []
    training = settings.training
    return judge_held(evidence.held_topics, evidence.window_champion, evidence.window_confidence,
                      evidence.window_candidate, share=training.gate_held_share,
                      agreement=training.gate_held_agreement, sure=settings.feedback.pattern_confidence,
                      min_rows=training.gate_topic_min_rows)


def _reason(gain: Gain, regressions: list[TopicRegression], abandoned: list[HeldCheck], margin: float) -> str:
    verdict = ">=" if gain.lower >= -margin else "<"
    text = (f"accuracy gain {gain.gain:+.4f} over the champion on {gain.n} untouched gold tickets "
            f"({gain.clusters} customers), {gain.confidence:.0%} lower bound {gain.lower:+.4f} {verdict} -{margin:.4f}")
    if regressions:
        text += "; regressed on the trusted set: " + "; ".join(str(r) for r in regressions)
    if abandoned:
        text += "; " + "; ".join(str(c) for c in abandoned)
    return text


def _acc(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(truth))) if len(truth) else float("nan")
