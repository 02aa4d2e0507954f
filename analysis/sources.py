"""Whose labels carry the verdict: each feedback source's share per arm, and the verdict without it.

Accuracy is measured on labels, and the feedback log records which integration's token sent each
one (`source`). One integration can therefore move the verdict on its own: labelling the
challenger's answers right and the champion's wrong makes a no-better challenger look far better,
whatever the customer-level statistics do with the rest. So, with labels from two or more
sources, the verdict is worked out again without each source's labels, by the same rule on the
same requests (they stay in the traffic and its SRM test, only the labels go; a request the source
relabelled falls back to the label another source gave it, by the same join rule `latest_labels`).
Every source is left out in turn, not only one holding more than half of the labels: a source
moves accuracy by about its own share (30% of the labels turn an even test into some +30 points).

- every source's share of the labels is shown per arm, and one holding more than half is marked;
- each source's leave-out verdict is shown;
- a `promote challenger` verdict that does not hold without one source (its leave-out verdict is
  anything but promote) *rests on that source*: `--promote` refuses it and names the source.

The leave-outs are further looks at subsets of the same data, so they are used as a veto only: a
promotion needs the verdict on all labels AND on every leave-out, so they can only remove
promotions. The false-promotion rate stays at most alpha, however often the report is run (the
always-valid interval of the full verdict bounds it); what the veto costs is power, since each
leave-out has fewer labels. With one source nothing is left out: the report says the verdict rests
on one source, the normal single-desk case, and that alone never blocks a promotion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis import covariate, guardrails
from analysis.arms import outcomes
from analysis.compare import compare
from analysis.experiment import Analysis
from analysis.fmt import interval, pct, pts
from analysis.verdict import PROMOTE, Evidence, decide
from ticket_ab.names import ARMS, SHADOW
from ticket_ab.requestlog import latest_labels
from ticket_ab.settings import ABSettings

UNNAMED = "(no source)"  # feedback rows written before the router recorded a source


@dataclass(frozen=True)
class Rule:
    """How the verdict was reached, so each leave-out reaches its own the same way."""

    thresholds: ABSettings
    sequential: bool = True
    scorer: covariate.Scorer | None = None


def check(analysis: Analysis, feedback: pd.DataFrame, rule: Rule) -> dict[str, Any]:
    """The label sources of the analysed period, each one's leave-out verdict, and the sources the
    verdict rests on (`deciding`): the summary's `label_sources`."""
    labelled = labels_by_source(analysis.analysed, feedback)
    total = int(len(labelled))
    shares = labelled["source"].value_counts()
    scored = _scored(analysis, rule) if len(shares) > 1 else analysis.analysed
    rows = []
    for source, count in shares.items():
        per_arm = _per_arm(labelled, analysis.summary["mode"], source)
        without = _without(analysis, scored, feedback, str(source), rule) if len(shares) > 1 else None
        rows.append({"source": str(source), "labels": int(count), "share": count / total, "per_arm": per_arm,
                     "majority": bool(count / total > 0.5), "without": without})
    full = analysis.summary["verdict"]["action"]
    for row in rows:
        row["decides"] = full == PROMOTE and row["without"] is not None and row["without"]["action"] != PROMOTE
    deciding = [r["source"] for r in rows if r["decides"]]
    return {"labels": total, "sources": rows, "single_source": len(rows) == 1,
            "majority": next((r["source"] for r in rows if r["majority"]), None), "deciding": deciding,
            "statement": statement(rows, full)}


def labels_by_source(analysed: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """The analysed period's labelled requests (`request_id`, `variant`) with the source of the label
    that counts for each, by the join rule every label count uses (`latest_labels`)."""
    labelled = analysed.loc[analysed["label"].notna(), ["request_id", "variant"]]
    last, _ = latest_labels(feedback, set(labelled["request_id"]))
    source = labelled["request_id"].map(last.set_index("request_id")["source"])
    return labelled.assign(source=source.fillna("").replace("", UNNAMED))


def _per_arm(labelled: pd.DataFrame, mode: str, source: str) -> dict[str, dict[str, float]]:
    """The source's labels and share in each arm (in shadow mode both arms answer the same labelled tickets)."""
    out = {}
    for arm in ARMS:
        rows = labelled if mode == SHADOW else labelled[labelled["variant"] == arm]
        n = int((rows["source"] == source).sum())
        out[arm] = {"labels": n, "share": n / len(rows) if len(rows) else float("nan")}
    return out


def _scored(analysis: Analysis, rule: Rule) -> pd.DataFrame:
    """The analysed rows with the champion's confidence on every labelled ticket (CUPAC), scored once:
    a leave-out's labelled tickets are among them."""
    mode, champion = analysis.summary["mode"], analysis.summary["config"]["current"]["champion"]
    return covariate.attach(analysis.analysed, mode, champion, rule.scorer)[0]


def _without(analysis: Analysis, scored: pd.DataFrame, feedback: pd.DataFrame, source: str,
             rule: Rule) -> dict[str, Any]:
    """The verdict and the comparison on every label but `source`'s: the same rule on the same requests
    (their SRM test does not depend on labels), the labels joined again without that source's rows."""
    named = feedback["source"].fillna("").astype(str).str.strip().replace("", UNNAMED)
    labels, _ = latest_labels(feedback.loc[named != source], set(scored["request_id"]))
    rows = scored.assign(label=scored["request_id"].map(labels.set_index("request_id")["label"]))
    mode, th, srm = analysis.summary["mode"], rule.thresholds, analysis.summary["srm"]
    c = compare(outcomes(rows, mode), mode, None, th, rule.sequential)
    checks = guardrails.check(rows, mode, c["n_a"] + c["n_b"], th, rule.sequential)
    verdict = decide(Evidence(n_a=c["n_a"], n_b=c["n_b"], diff=c["diff"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                              needed_more=c["evidence"]["more_labelled"], srm_flagged=bool(srm["flagged"]),
                              srm_p=srm["p_value"], guardrails=checks, sequential=rule.sequential), th)
    return {"action": verdict.action, "text": verdict.text, "reason": verdict.reason,
            "labelled": int(c["n_a"] + c["n_b"]), "diff": c["diff"], "ci_low": c["ci_low"], "ci_high": c["ci_high"]}


def statement(rows: list[dict[str, Any]], full: str) -> str:
    """One sentence on what the verdict rests on, for the console, the page and a refused promotion."""
    if not rows:
        return "no feedback labels in the analysed period"
    if len(rows) == 1:
        return (f"the verdict rests on one feedback source, '{rows[0]['source']}' (all {rows[0]['labels']:,} labels): "
                "there is no other source to check it against (the normal case for a single desk)")
    deciding = [r for r in rows if r["decides"]]
    if deciding:
        return "; ".join(f"the promotion rests on source '{r['source']}' ({pct(r['share'])} of the labels): without "
                         f"them the verdict is {r['without']['text']} ({_difference(r['without'])})" for r in deciding)
    largest = rows[0]
    text = (f"labels from {len(rows)} sources, the largest '{largest['source']}' with {pct(largest['share'])}"
            f"{' (more than half)' if largest['majority'] else ''}; ")
    if full == PROMOTE:
        return text + "the promotion holds without any one of them"
    blocking = [r["source"] for r in rows if r["without"]["action"] == PROMOTE]
    if blocking:  # not a promotion either way (it needs every label), but worth a look at that source
        return text + "without " + " or ".join(f"'{s}'" for s in blocking) + " the verdict would be to promote"
    return text + "without any one of them the verdict would not be to promote either"


def _difference(without: dict[str, Any]) -> str:
    return f"B − A = {pts(without['diff'])}, interval {interval([without['ci_low'], without['ci_high']], pts)}"
