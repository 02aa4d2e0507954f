"""Training labels for a window: clean the gold, pseudo-label what is safe, queue the rest for agents.

Feedback labels are gold but noisy (agents click the wrong topic), and most tickets have none.
Training on raw feedback teaches the noise; training on every model guess teaches the model its own
mistakes. So:

0. feedback in a label pattern the champion contradicts (`retrain.ml.patterns`) is quarantined:
   reported, queued for review, never trained on until confirmed. Late feedback (labels for
   tickets of earlier windows, pending in the label store) is judged here with the window's own,
   by the same pattern check and then cleanlab, and is never held out: it is not this window's
   traffic;
1. a stratified share of the agents' labels is held out *untouched*, before any cleaning: it
   gates the challenger and verifies the pseudo-label threshold, and nothing is fitted on it, so no
   number the gate sees comes from a label a model produced;
2. cleanlab flags likely label errors among the rest of the gold, using out-of-fold probabilities
   of a quick TF-IDF + LogisticRegression trained on the reference plus the other gold folds; a
   flagged label is replaced by the model's label when the model is sure, else the ticket is
   disputed (review);
3. the cleaned gold is split again: most of it (with the reference) trains a pseudo-labeller, the
   rest chooses its confidence threshold (`retrain.ml.threshold`: the lowest of a fixed grid whose
   precision reaches the target with 95% confidence for the whole family of thresholds tried);
4. that threshold is then verified once on the untouched gold, the agents' raw labels, and
   pseudo-labels are made only when that gold proves the target with 95% confidence;
5. the other unlabelled tickets and the disputed gold go to `reports/review_queue.csv` with the
   model's suggestion, least confident first.

A priority label (`label_priority`: feedback may correct the priority as well as or instead of the
topic) rides along with its row as `priority`. A row with only a priority is gold for the priority
head and nothing for the topic: it bypasses all of the above (no cleaning, no pseudo-label, no
review) and is trained on with no topic (`priority_only` in the stats). So is the priority of a gold row
whose topic is disputed (cleanlab: the row goes to review) or dropped (a rare unknown label): its topic is
doubtful, its priority is still the agent's (`gold_disputed_priority_kept`, `rare_unknown_priority_kept`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline

from retrain.ml.evaluate import split_holdout
from retrain.ml.features import baseline_pipeline
from retrain.ml.patterns import Pattern, champion_view, find_patterns
from retrain.ml.threshold import Calibration, calibrate_labeller, calibration_stats, verify_threshold
from ticket_ab.atomic import replace_file
from ticket_ab.schema import PRIORITY, TEXT, TOPIC, as_labels
from ticket_ab.settings import FeedbackSettings, RelabelSettings

GOLD, FIXED, PSEUDO = "gold", "fixed", "pseudo"
# PRIORITY: a row's priority label (from the window's `label_priority`; None where none was given)
# Kept with every row: the label store and the gate use them (a quarantined row keeps its priority with it).
CARRIED = ("request_id", "customer_id", "label_source", "timestamp", PRIORITY)
ID = "ticket_id"
REVIEW_COLUMNS = ("ticket_id", "request_id", "origin", TEXT, "given_label", "suggested_topic", "confidence")


@dataclass
class Relabelled:
    train: pd.DataFrame  # ticket_id, text, topic, label_origin (gold | fixed | pseudo), CARRIED
    holdout: pd.DataFrame  # ticket_id, text, topic, customer_id: untouched agents' labels, never trained on
    review: pd.DataFrame  # REVIEW_COLUMNS
    stats: dict[str, Any]
    quarantined: pd.DataFrame = field(default_factory=pd.DataFrame)  # gold in a suspicious pattern, with `pattern`
    patterns: list[Pattern] = field(default_factory=list)


def out_of_fold_probabilities(
    gold: pd.DataFrame, reference: pd.DataFrame, classes: list[str], *, folds: int = 3, seed: int = 0
) -> np.ndarray:
    """P(topic | text) for each gold ticket from a model that never saw that ticket's label.

    The reference joins every fold's training set, so even a few hundred gold labels get
    probabilities from a model that knows every topic.
    """
    probs = np.zeros((len(gold), len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    splitter = KFold(n_splits=min(folds, len(gold)), shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(gold):
        fit = pd.concat([reference[[TEXT, TOPIC]], gold.iloc[train_idx][[TEXT, TOPIC]]], ignore_index=True)
        model = baseline_pipeline(seed).fit(fit[[TEXT]], fit[TOPIC].astype(str))
        fold_probs = model.predict_proba(gold.iloc[test_idx][[TEXT]])
        columns = [index[c] for c in model.classes_]
        probs[np.ix_(test_idx, columns)] = fold_probs
    return probs


def clean_labels(
    gold: pd.DataFrame, reference: pd.DataFrame, *, folds: int = 3, seed: int = 0, fix_confidence: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(cleaned gold, disputed gold, stats): likely label errors fixed, or set aside when unsure.

    cleanlab's `both` filter (noise-rate pruning and confident learning must agree) flags fewer
    correct-but-hard tickets than either alone (measured on generated tickets with 5-20% flipped
    labels). A flagged label is replaced by the out-of-fold model's topic when that model is at
    least `fix_confidence` sure; otherwise the ticket is disputed and goes to the review queue.
    """
    classes = sorted(set(reference[TOPIC].astype(str)) | set(gold[TOPIC].astype(str)))
    probs = out_of_fold_probabilities(gold, reference, classes, folds=folds, seed=seed)
    given = gold[TOPIC].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
    issues = find_label_issues(given, probs, filter_by="both", n_jobs=1)
    suggested, sure = np.array(classes)[probs.argmax(axis=1)], probs.max(axis=1) >= fix_confidence
    fixed, disputed = issues & sure, issues & ~sure
    cleaned = gold.copy()
    cleaned.loc[fixed, TOPIC] = suggested[fixed]
    cleaned["label_origin"] = np.where(fixed, FIXED, GOLD)
    stats = {"gold": int(len(gold)), "gold_issues": int(issues.sum()), "gold_fixed": int(fixed.sum()),
             "gold_disputed": int(disputed.sum()), "gold_health": float(1 - issues.mean()) if len(gold) else None}
    dispute = gold.loc[disputed].assign(suggested_topic=suggested[disputed], confidence=probs.max(axis=1)[disputed])
    return cleaned.loc[~disputed].reset_index(drop=True), dispute.reset_index(drop=True), stats


def relabel(window: pd.DataFrame, reference: pd.DataFrame, config: RelabelSettings, seed: int = 0, *,
            champion: Any = None, guards: FeedbackSettings | None = None,
            late: pd.DataFrame | None = None) -> Relabelled:
    """Build training labels for a window (`text`, `label` maybe NaN) given the reference (`text`, `topic`).

    `champion` (a fitted pipeline with predict_proba) enables the label-pattern quarantine. `late`
    (the window's columns, every row labelled) is judged with the window's gold and trained on only
    when it passes; rows of it carry `late` True in `train` and `quarantined`.
    """
    window, late = _rows(window).assign(late=False), _rows(late if late is not None else window.iloc[0:0])
    reference = reference.loc[reference[TOPIC].notna()]  # its priority-only rows teach no topic
    gold, unlabelled, stats = split_gold(pd.concat([window, late.assign(late=True)], ignore_index=True),
                                         reference, config)
    unlabelled, priority_only = _priority_only(unlabelled)  # with the rare unknown labels' priorities
    stats.update(window=int(len(window)), unlabelled=int(len(unlabelled)), priority_only=int(len(priority_only)))
    gold, quarantined, patterns = quarantine(gold, champion, guards or FeedbackSettings())
    stats.update(quarantined=int(len(quarantined)), patterns=[str(p) for p in patterns])
    on_time, late_gold = gold.loc[~gold["late"]], gold.loc[gold["late"]]
    if len(gold) < config.min_gold:
        stats.update(gold=int(len(gold)), gold_issues=0, gold_fixed=0, gold_disputed=0, gold_health=None,
                     gold_disputed_priority_kept=0)
        result = _uncalibrated(gold.assign(label_origin=GOLD), unlabelled, stats,
                               f"{len(gold)} gold labels < {config.min_gold}: nothing cleaned or pseudo-labelled")
        result = replace(result, quarantined=quarantined, patterns=patterns)
        result = _with_priority_only(result, priority_only)
        return replace(result, stats=_late_stats(result.stats, late, result))
    work, untouched = split_holdout(on_time, config.gold_holdout, seed)  # before cleaning: the gate's gold
    cleaned, disputed, clean_stats = clean_labels(pd.concat([work, late_gold], ignore_index=True), reference,
                                                  folds=config.cleanlab_folds, seed=seed)
    _, kept = _priority_only(disputed)  # the disputed topic goes to review, the agent's priority is trained on
    priority_only = pd.concat([priority_only, kept], ignore_index=True)
    stats.update(clean_stats, holdout=int(len(untouched)), gold_disputed_priority_kept=int(len(kept)))
    labeller, calibration = fit_labeller(cleaned, reference, untouched, config, seed)
    stats.update(calibration_stats(calibration))
    threshold = calibration.threshold if calibration.verified else None
    pseudo, review = pseudo_label(labeller, threshold, unlabelled, pd.concat([disputed, quarantined]))
    keep = [ID, TEXT, TOPIC, "label_origin", "late", *CARRIED]
    train = pd.concat([cleaned[keep], pseudo.assign(label_origin=PSEUDO)[keep]], ignore_index=True)
    stats.update(pseudo=int(len(pseudo)), review=int(len(review)), train=int(len(train)),
                 estimated_label_precision=_estimated_precision(len(cleaned), len(pseudo), calibration.lower))
    holdout = untouched[[ID, TEXT, TOPIC, *CARRIED]].reset_index(drop=True)
    result = _with_priority_only(Relabelled(train, holdout, review, stats, quarantined, patterns), priority_only)
    return replace(result, stats=_late_stats(result.stats, late, result, disputed))


def _priority_only(unlabelled: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the tickets without any label, those with only a priority label): the latter are gold for the priority
    head, so they are neither pseudo-labelled nor queued for review."""
    given = unlabelled[PRIORITY].notna()
    return unlabelled.loc[~given], unlabelled.loc[given].assign(**{TOPIC: None})


def _with_priority_only(result: Relabelled, priority_only: pd.DataFrame) -> Relabelled:
    """`result` with the priority-only rows trained on as gold (no topic)."""
    if priority_only.empty:
        return result
    keep = [ID, TEXT, TOPIC, "label_origin", "late", *CARRIED]
    train = pd.concat([result.train, priority_only.assign(label_origin=GOLD)[keep]], ignore_index=True)
    return replace(result, train=train, stats={**result.stats, "train": int(len(train))})


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a ticket id on every row, its priority label as `priority` (None where none was given: windows
    from before priorities have no `label_priority`) and every carried column (None when unknown)."""
    frame = frame.reset_index(drop=True)
    if ID not in frame:
        frame[ID] = [f"row-{i}" for i in range(len(frame))]
    values = frame["label_priority"] if "label_priority" in frame else [None] * len(frame)
    frame[PRIORITY] = pd.Series(as_labels(values), dtype=object)
    for column in CARRIED:
        if column not in frame:
            frame[column] = None
    return frame


def _late_stats(stats: dict[str, Any], late: pd.DataFrame, result: Relabelled,
                disputed: pd.DataFrame | None = None) -> dict[str, Any]:
    """Where the late labels went: trained on, quarantined, disputed (review), or dropped as rare."""
    def count(frame: pd.DataFrame | None) -> int:
        return 0 if frame is None or "late" not in frame else int(frame["late"].fillna(False).astype(bool).sum())

    return {**stats, "late_judged": int(len(late)), "late_accepted": count(result.train),
            "late_quarantined": count(result.quarantined), "late_disputed": count(disputed)}


def quarantine(gold: pd.DataFrame, champion: Any,
               guards: FeedbackSettings) -> tuple[pd.DataFrame, pd.DataFrame, list[Pattern]]:
    """(gold outside any suspicious pattern, gold inside one with its `pattern` and the champion's
    suggestion, the patterns). Without a champion nothing is judged."""
    if champion is None or gold.empty:
        return gold, gold.iloc[0:0].assign(pattern=[], suggested_topic=[], confidence=[]), []
    predicted, confidence = champion_view(champion, gold[TEXT])
    names, patterns = find_patterns(gold[TOPIC].to_numpy(), predicted, confidence, guards)
    held = names != ""
    out = gold.loc[held].assign(pattern=names[held], suggested_topic=predicted[held], confidence=confidence[held])
    return gold.loc[~held].reset_index(drop=True), out.reset_index(drop=True), patterns


def fit_labeller(cleaned: pd.DataFrame, reference: pd.DataFrame, untouched: pd.DataFrame, config: RelabelSettings,
                 seed: int) -> tuple[Pipeline, Calibration]:
    """The pseudo-labeller (reference + most cleaned gold), its threshold chosen on the rest of the
    cleaned gold and verified on the untouched gold."""
    fit_gold, choosing = split_holdout(cleaned, config.calibration_share, seed)
    fit = pd.concat([reference[[TEXT, TOPIC]], fit_gold[[TEXT, TOPIC]]], ignore_index=True)
    labeller = baseline_pipeline(seed).fit(fit[[TEXT]], fit[TOPIC].astype(str))
    chosen = calibrate_labeller(labeller, choosing, config)
    return labeller, verify_threshold(labeller, chosen, untouched, config)


def split_gold(window: pd.DataFrame, reference: pd.DataFrame,
               config: RelabelSettings) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(gold with `topic` from its label, unlabelled, stats). A label the reference never had is
    kept only when frequent enough to be a new topic rather than a typo; a dropped one's row stays with
    its priority alone (with the unlabelled rows), when it has one. `window` has `priority` (`_rows`)."""
    has_label = window["label"].notna() & window["label"].astype(str).str.strip().ne("")
    gold = window.loc[has_label].assign(**{TOPIC: window.loc[has_label, "label"].astype(str).str.strip()})
    unlabelled = window.loc[~has_label]
    known = set(reference[TOPIC].astype(str))
    counts = gold[TOPIC].value_counts()
    rare = gold[TOPIC].map(counts).lt(max(config.cleanlab_folds, 3)) & ~gold[TOPIC].isin(known)
    # a dropped label's priority stays, as a row with only a priority (the caller's `_priority_only` takes it)
    kept = gold.loc[rare & gold[PRIORITY].notna()].drop(columns=TOPIC).assign(label=None)
    stats: dict[str, Any] = {"window": int(len(window)), "unlabelled": int(len(unlabelled)),
                             "rare_unknown_labels_dropped": int(rare.sum()),
                             "rare_unknown_priority_kept": int(len(kept))}
    return gold.loc[~rare].reset_index(drop=True), pd.concat([unlabelled, kept]), stats


def pseudo_label(labeller: Pipeline, threshold: float | None, unlabelled: pd.DataFrame,
                 disputed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(unlabelled tickets the labeller is sure about, with its topic; the review queue of the rest
    and the disputed gold, least confident first)."""
    pseudo = unlabelled.iloc[0:0].assign(**{TOPIC: []})
    suggested = confidence = None
    if len(unlabelled):
        probs = labeller.predict_proba(unlabelled[[TEXT]])
        suggested, confidence = labeller.classes_[probs.argmax(axis=1)], probs.max(axis=1)
        if threshold is not None:
            keep = confidence >= threshold
            pseudo = unlabelled.loc[keep].assign(**{TOPIC: suggested[keep]})
            unlabelled, suggested, confidence = unlabelled.loc[~keep], suggested[~keep], confidence[~keep]
    parts = [_review(unlabelled, suggested, confidence)]
    if len(disputed):
        parts.append(_review(disputed, disputed["suggested_topic"].to_numpy(), disputed["confidence"].to_numpy()))
    review = pd.concat(parts, ignore_index=True).sort_values("confidence", na_position="first", kind="stable")
    return pseudo, review.reset_index(drop=True)


def _uncalibrated(gold: pd.DataFrame, unlabelled: pd.DataFrame, stats: dict[str, Any], why: str) -> Relabelled:
    """Too little gold to calibrate: train on the gold as it is, hold nothing out, review the rest."""
    review = _review(unlabelled, None, None)
    stats.update(holdout=0, pseudo=0, **calibration_stats(Calibration(None, None, None, 0, why)),
                 review=int(len(review)), train=int(len(gold)), estimated_label_precision=None)
    return Relabelled(gold[[ID, TEXT, TOPIC, "label_origin", "late", *CARRIED]].reset_index(drop=True),
                      gold.iloc[0:0][[ID, TEXT, TOPIC, *CARRIED]], review, stats)


def _estimated_precision(gold_rows: int, pseudo_rows: int, pseudo_precision: float | None) -> float | None:
    """Share of the window's training labels expected to be right, conservatively: cleaned gold as
    right, pseudo-labels at the lower bound of their calibrated precision."""
    total = gold_rows + pseudo_rows
    if not total:
        return None
    return float((gold_rows + pseudo_rows * (pseudo_precision or 0.0)) / total)


def _review(rows: pd.DataFrame, suggested: np.ndarray | None, confidence: np.ndarray | None) -> pd.DataFrame:
    n = len(rows)
    out = pd.DataFrame({
        ID: rows[ID].to_numpy() if ID in rows else [None] * n,
        "request_id": rows["request_id"].to_numpy() if "request_id" in rows else [None] * n,
        "origin": rows["origin"].to_numpy() if "origin" in rows else [None] * n,
        TEXT: rows[TEXT].to_numpy(),
        "given_label": rows["label"].to_numpy() if "label" in rows else [None] * n,
        "suggested_topic": suggested if suggested is not None else [None] * n,
        "confidence": np.round(confidence, 4) if confidence is not None else [None] * n,
    })
    return out[list(REVIEW_COLUMNS)]


def write_review_queue(review: pd.DataFrame, path: Path) -> Path:
    """Agents' work list, least confident first; replaced each run (atomic rename)."""
    replace_file(path, lambda fh: review.to_csv(fh, index=False))
    return Path(path)
