"""Training labels for a window: clean the gold, pseudo-label what is safe, queue the rest for agents.

Feedback labels are gold but noisy (agents click the wrong topic), and most tickets have none.
Training on raw feedback teaches the noise; training on every model guess teaches the model its own
mistakes. So:

0. feedback in a label pattern the champion contradicts (`retrain.ml.patterns`) is quarantined:
   reported, queued for review, never trained on until confirmed;
1. a stratified share of the agents' labels is held out *untouched*, before any cleaning: it
   gates the challenger and verifies the pseudo-label threshold, and nothing is fitted on it, so no
   number the gate sees comes from a label a model produced;
2. cleanlab flags likely label errors among the rest of the gold, using out-of-fold probabilities
   of a quick TF-IDF + LogisticRegression trained on the reference plus the other gold folds; a
   flagged label is replaced by the model's label when the model is sure, else the ticket is
   disputed (review);
3. the cleaned gold is split again: most of it (with the reference) trains a pseudo-labeller, the
   rest chooses its confidence threshold, the lowest whose precision reaches the target (0.95)
   with 95% confidence;
4. that threshold is then verified once on the untouched gold: its precision there, with an
   interval, is what the report states, and pseudo-labels are only made when the verification
   does not reject the target (choosing and verifying on one set is a selection effect: the
   lowest of many thresholds that pass is the one whose luck was best);
5. the other unlabelled tickets and the disputed gold go to `reports/review_queue.csv` with the
   model's suggestion, least confident first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from scipy.stats import binomtest
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline

from retrain.contracts.schema import TEXT, TOPIC
from retrain.contracts.settings import FeedbackSettings, RelabelSettings
from retrain.ml.evaluate import split_holdout
from retrain.ml.features import baseline_pipeline
from retrain.ml.patterns import Pattern, champion_view, find_patterns
from retrain.ml.stats import wilson_bounds, wilson_lower

GOLD, FIXED, PSEUDO = "gold", "fixed", "pseudo"
# Kept with every row: the label store and the gate use them.
CARRIED = ("request_id", "customer_id", "label_source", "timestamp")
ID = "ticket_id"
REVIEW_COLUMNS = ("ticket_id", "request_id", "origin", TEXT, "given_label", "suggested_topic", "confidence")


@dataclass
class Calibration:
    threshold: float | None  # None: no threshold reaches the target with enough support
    precision: float | None  # observed on the choosing split above the threshold
    lower: float | None  # its one-sided 95% lower bound there
    support: int
    reason: str
    verified: bool = False  # the untouched gold did not reject the target at this threshold
    verified_precision: float | None = None  # precision on the untouched gold above the threshold
    verified_interval: tuple[float, float] | None = None  # its two-sided 95% Wilson interval
    verified_support: int = 0


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


def calibrate_threshold(
    confidence: np.ndarray, correct: np.ndarray, *, target: float = 0.95, min_support: int = 30, z: float = 1.645
) -> Calibration:
    """The lowest confidence threshold whose precision is >= target with 95% confidence.

    Lowest, because every ticket above it is one agents need not label. The bound matters: taking
    the lowest threshold whose *observed* precision on ~100 holdout tickets reaches 0.95 gave true
    precisions of 0.88-0.98 on generated windows; the one-sided Wilson lower bound keeps the
    promise at the price of a higher threshold when the holdout is small. Precision is computed on
    the whole set above a threshold (ties included), the set pseudo-labels would come from.
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if len(confidence) < min_support:
        return Calibration(None, None, None, int(len(confidence)),
                           f"{len(confidence)} holdout tickets < {min_support} needed to calibrate")
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], correct[order]
    cum = np.cumsum(hits)
    # the end of each tie group: a threshold at conf[i] admits everything up to the group's end
    ends = np.flatnonzero(np.r_[conf[1:] != conf[:-1], True])
    support = ends + 1
    precision = cum[ends] / support
    lower = wilson_lower(cum[ends], support, z)
    ok = (support >= min_support) & (lower >= target)
    if not ok.any():
        best = float(lower[support >= min_support].max())
        return Calibration(None, None, None, 0, f"no threshold has precision >= {target:.2f} with 95% confidence on "
                                          f">= {min_support} holdout tickets (best lower bound {best:.3f})")
    i = np.flatnonzero(ok)[-1]
    return Calibration(float(conf[ends[i]]), float(precision[i]), float(lower[i]), int(support[i]),
                       f"confidence >= {conf[ends[i]]:.3f}: precision {precision[i]:.3f} (95% lower bound "
                       f"{lower[i]:.3f}) on {support[i]} holdout tickets")


def relabel(window: pd.DataFrame, reference: pd.DataFrame, config: RelabelSettings, seed: int = 0, *,
            champion: Any = None, guards: FeedbackSettings | None = None) -> Relabelled:
    """Build training labels for a window (`text`, `label` maybe NaN) given the reference (`text`, `topic`).

    `champion` (a fitted pipeline with predict_proba) enables the label-pattern quarantine.
    """
    window = window.reset_index(drop=True)
    if ID not in window:
        window[ID] = [f"row-{i}" for i in range(len(window))]
    for column in CARRIED:
        if column not in window:
            window[column] = None
    gold, unlabelled, stats = split_gold(window, reference, config)
    gold, quarantined, patterns = quarantine(gold, champion, guards or FeedbackSettings())
    stats.update(quarantined=int(len(quarantined)), patterns=[str(p) for p in patterns])
    if len(gold) < config.min_gold:
        stats.update(gold=int(len(gold)), gold_issues=0, gold_fixed=0, gold_disputed=0, gold_health=None)
        result = _uncalibrated(gold.assign(label_origin=GOLD), unlabelled, stats,
                               f"{len(gold)} gold labels < {config.min_gold}: nothing cleaned or pseudo-labelled")
        return replace(result, quarantined=quarantined, patterns=patterns)
    work, untouched = split_holdout(gold, config.gold_holdout, seed)  # before cleaning: the gate's gold
    cleaned, disputed, clean_stats = clean_labels(work, reference, folds=config.cleanlab_folds, seed=seed)
    stats.update(clean_stats, holdout=int(len(untouched)))
    agent_error = clean_stats["gold_issues"] / max(1, clean_stats["gold"])
    labeller, calibration = fit_labeller(cleaned, reference, untouched, config, seed, agent_error)
    stats.update(_calibration_stats(calibration))
    threshold = calibration.threshold if calibration.verified else None
    pseudo, review = pseudo_label(labeller, threshold, unlabelled, pd.concat([disputed, quarantined]))
    keep = [ID, TEXT, TOPIC, "label_origin", *CARRIED]
    train = pd.concat([cleaned[keep], pseudo.assign(label_origin=PSEUDO)[keep]], ignore_index=True)
    stats.update(pseudo=int(len(pseudo)), review=int(len(review)), train=int(len(train)),
                 estimated_label_precision=_estimated_precision(len(cleaned), len(pseudo), calibration.lower))
    holdout = untouched[[ID, TEXT, TOPIC, *CARRIED]].reset_index(drop=True)
    return Relabelled(train, holdout, review, stats, quarantined, patterns)


def quarantine(gold: pd.DataFrame, champion: Any,
               guards: FeedbackSettings) -> tuple[pd.DataFrame, pd.DataFrame, list[Pattern]]:
    """(gold outside any suspicious pattern, gold inside one with its `pattern` and the champion's
    suggestion, the patterns). Without a champion nothing is judged."""
    if champion is None or gold.empty:
        return gold, gold.iloc[0:0].assign(pattern=[], suggested_topic=[], confidence=[]), []
    predicted, confidence = champion_view(champion, gold[TEXT])
    held, patterns = find_patterns(gold[TOPIC].to_numpy(), predicted, confidence, guards)
    names = np.array([f"{a}->{b}" for a, b in zip(predicted, gold[TOPIC].astype(str), strict=True)])
    out = gold.loc[held].assign(pattern=names[held], suggested_topic=predicted[held], confidence=confidence[held])
    return gold.loc[~held].reset_index(drop=True), out.reset_index(drop=True), patterns


def fit_labeller(cleaned: pd.DataFrame, reference: pd.DataFrame, untouched: pd.DataFrame, config: RelabelSettings,
                 seed: int, agent_error: float = 0.0) -> tuple[Pipeline, Calibration]:
    """The pseudo-labeller (reference + most cleaned gold), its threshold chosen on the rest of the
    cleaned gold and verified on the untouched gold."""
    fit_gold, choosing = split_holdout(cleaned, config.calibration_share, seed)
    fit = pd.concat([reference[[TEXT, TOPIC]], fit_gold[[TEXT, TOPIC]]], ignore_index=True)
    labeller = baseline_pipeline(seed).fit(fit[[TEXT]], fit[TOPIC].astype(str))
    chosen = calibrate_labeller(labeller, choosing, config)
    return labeller, verify_threshold(labeller, chosen, untouched, config, agent_error)


def verify_threshold(labeller: Pipeline, chosen: Calibration, untouched: pd.DataFrame, config: RelabelSettings,
                     agent_error: float = 0.0) -> Calibration:
    """Measure the chosen threshold's precision once on gold it was not chosen on.

    The untouched labels are agents' raw labels: a pseudo-label that is right still disagrees with
    an agent's wrong click, so agreement is about precision x (1 - agents' error rate). The error
    rate is cleanlab's share of flagged labels on the *other* gold (an estimate, never a label on
    these tickets). Verified unless a one-sided binomial test (scipy's `binomtest`) rejects
    "agreement >= target x (1 - error)" at 5%. Too few untouched tickets above the threshold
    (< pseudo_min_support) verify nothing.
    """
    if chosen.threshold is None or untouched.empty:
        return chosen
    probs = labeller.predict_proba(untouched[[TEXT]])
    above = probs.max(axis=1) >= chosen.threshold
    right = labeller.classes_[probs.argmax(axis=1)] == untouched[TOPIC].astype(str).to_numpy()
    hits = int(right[above].sum())
    n = int(above.sum())
    if n < config.pseudo_min_support:
        return replace(chosen, verified_support=n, reason=chosen.reason + f"; not verified: {n} untouched tickets "
                       f"above it < {config.pseudo_min_support}")
    low, high = (float(b) for b in wilson_bounds(hits, n, 1.96))
    expected = config.pseudo_precision * (1 - agent_error)
    rejected = binomtest(hits, n, expected, alternative="less").pvalue < 0.05
    verdict = "rejects" if rejected else "does not reject"
    return replace(chosen, verified=not rejected, verified_precision=hits / n, verified_interval=(low, high),
                   verified_support=n, reason=chosen.reason + f"; verified on {n} untouched tickets: agreement with "
                   f"agents {hits / n:.3f} (95% CI {low:.3f}-{high:.3f}), which {verdict} >= {expected:.3f} "
                   f"(precision {config.pseudo_precision:.2f} x agents' estimated accuracy {1 - agent_error:.3f})")


def _calibration_stats(calibration: Calibration) -> dict[str, Any]:
    return {"pseudo_threshold": calibration.threshold, "pseudo_precision_chosen": calibration.precision,
            "pseudo_precision_lower": calibration.lower, "pseudo_verified": calibration.verified,
            "pseudo_precision": calibration.verified_precision,
            "pseudo_precision_interval": calibration.verified_interval,
            "pseudo_verified_support": calibration.verified_support, "calibration": calibration.reason}


def split_gold(window: pd.DataFrame, reference: pd.DataFrame,
               config: RelabelSettings) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(gold with `topic` from its label, unlabelled, stats). A label the reference never had is
    kept only when frequent enough to be a new topic rather than a typo."""
    has_label = window["label"].notna() & window["label"].astype(str).str.strip().ne("")
    gold = window.loc[has_label].assign(**{TOPIC: window.loc[has_label, "label"].astype(str).str.strip()})
    unlabelled = window.loc[~has_label]
    known = set(reference[TOPIC].astype(str))
    counts = gold[TOPIC].value_counts()
    rare = gold[TOPIC].map(counts).lt(max(config.cleanlab_folds, 3)) & ~gold[TOPIC].isin(known)
    stats: dict[str, Any] = {"window": int(len(window)), "unlabelled": int(len(unlabelled)),
                             "rare_unknown_labels_dropped": int(rare.sum())}
    return gold.loc[~rare].reset_index(drop=True), unlabelled, stats


def calibrate_labeller(labeller: Pipeline, holdout: pd.DataFrame, config: RelabelSettings) -> Calibration:
    """The pseudo-labeller's confidence threshold, calibrated on the gold holdout."""
    probs = labeller.predict_proba(holdout[[TEXT]])
    predicted = labeller.classes_[probs.argmax(axis=1)]
    return calibrate_threshold(probs.max(axis=1), predicted == holdout[TOPIC].astype(str).to_numpy(),
                               target=config.pseudo_precision, min_support=config.pseudo_min_support)


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
    stats.update(holdout=0, pseudo=0, **_calibration_stats(Calibration(None, None, None, 0, why)),
                 review=int(len(review)), train=int(len(gold)), estimated_label_precision=None)
    return Relabelled(gold[[ID, TEXT, TOPIC, "label_origin", *CARRIED]].reset_index(drop=True),
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    review.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
