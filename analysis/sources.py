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

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis import covariate, guardrails
from analysis.arms import outcomes, pooled
from analysis.compare import compare
from analysis.fmt import interval, pct, pts
from analysis.verdict import PROMOTE, Evidence, decide
from ticket_ab.names import ARMS, SHADOW
from ticket_ab.settings import ABSettings

if TYPE_CHECKING:  # the experiment runs this check: importing it here would be a cycle
    from analysis.experiment import Analysis

UNNAMED = "(no source)"  # feedback rows written before the router recorded a source


@dataclass(frozen=True)
class Rule:
    """How the verdict was reached, so each leave-out reaches its own the same way."""

    thresholds: ABSettings
    sequential: bool = True


def check(analysis: Analysis, rule: Rule, shares: pd.DataFrame,
          without: Callable[[str], pd.DataFrame]) -> dict[str, Any]:
    """The label sources of the analysed period (`shares`: labels per source and arm, `analysis.traffic.
    source_shares`), each one's leave-out verdict on the cells `without(source)` gives, and the sources the
    verdict rests on (`deciding`): the summary's `label_sources`."""
    mode = analysis.summary["mode"]
    total = int(shares["labels"].sum())
    per_arm_total = {"A": int(shares["a"].sum()), "B": int(shares["b"].sum())}
    rows = []
    for row in shares.itertuples(index=False):
        source, count = str(row.source), int(row.labels)
        per_arm = {arm: _share(count if mode == SHADOW else int(getattr(row, arm.lower())),
                               total if mode == SHADOW else per_arm_total[arm]) for arm in ARMS}
        left_out = _without(analysis, without(source), rule) if len(shares) > 1 else None
        rows.append({"source": source or UNNAMED, "labels": count, "share": count / total, "per_arm": per_arm,
                     "majority": bool(count / total > 0.5), "without": left_out})
    full = analysis.summary["verdict"]["action"]
    for row in rows:
        row["decides"] = full == PROMOTE and row["without"] is not None and row["without"]["action"] != PROMOTE
    deciding = [r["source"] for r in rows if r["decides"]]
    return {"labels": total, "sources": rows, "single_source": len(rows) == 1,
            "majority": next((r["source"] for r in rows if r["majority"]), None), "deciding": deciding,
            "statement": statement(rows, full)}


def _share(n: int, of: int) -> dict[str, float]:
    return {"labels": n, "share": n / of if of else float("nan")}


def _without(analysis: Analysis, cells: pd.DataFrame, rule: Rule) -> dict[str, Any]:
    """The verdict and the comparison on every label but one source's (`cells`: the analysed labelled requests
    with the label the other sources' feedback gives each, by the same join rule): the same rule on the same
    requests, whose SRM test and serving guardrails do not depend on labels."""
    mode, th, srm = analysis.summary["mode"], rule.thresholds, analysis.summary["srm"]
    c = compare(pooled(outcomes(_scored(cells, analysis.scores), mode)), mode, None, th, rule.sequential)
    looks = c["n_a"] + c["n_b"]
    checks = analysis.serving + guardrails.topic_guardrails(cells, mode, looks, th, rule.sequential)
    verdict = decide(Evidence(n_a=c["n_a"], n_b=c["n_b"], diff=c["diff"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                              needed_more=c["evidence"]["more_labelled"], srm_flagged=bool(srm["flagged"]),
                              srm_p=srm["p_value"], guardrails=checks, sequential=rule.sequential), th)
    return {"action": verdict.action, "text": verdict.text, "reason": verdict.reason,
            "labelled": int(c["n_a"] + c["n_b"]), "diff": c["diff"], "ci_low": c["ci_low"], "ci_high": c["ci_high"]}


def _scored(cells: pd.DataFrame, scores: pd.Series) -> pd.DataFrame:
    """The leave-out's cells with CUPAC's offline `scores` (by `rid`) where the router logged none, so each leave-out
    is adjusted as the full comparison is; where a score is missing the comparison goes unadjusted, as it would."""
    if covariate.COLUMN not in cells or cells[covariate.COLUMN].notna().all():
        return cells
    return cells.assign(**{covariate.COLUMN: cells[covariate.COLUMN].fillna(cells["rid"].map(scores))})


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
