"""Priority in the A/B report: each arm's priority accuracy (a secondary metric) and the urgent-missed guardrail.

A two-head version answers a priority beside the topic (the request log's `priority`, and `shadow_priority`
for the shadow's answer); an agent may correct it (the feedback's `priority`). The topic decides the test;
priority is watched, not optimised, so it enters the verdict only as a guardrail, where a regression costs
most: a ticket labelled urgent that the arm answered low or medium sits at the back of the queue.

Definitions (those of `analysis.experiment` otherwise):

- A request's priority label is the last non-blank `priority` of the feedback for it (by time, then log order),
  whatever its topic label (`analysis.prepare`: a priority-only correction is a priority label and no topic
  label, and a topic-only one erases no earlier priority).
- Arm accuracy by intention-to-treat over the analysed requests with a priority label: in split mode every request
  assigned to the arm (a fallback counts with the champion's answer, an error is wrong), in shadow mode the
  tickets both models were tried on (a failed shadow is wrong), A's `priority` against B's `shadow_priority`.
  The interval is the customer-level Wilson one of the topic accuracy (`inference.proportion_interval`).
- Urgent missed: of an arm's requests labelled urgent, the share it answered low or medium, or not at all (an error
  or a failed shadow: the ticket got no priority). The guardrail is B - A of that share per customer (cluster-robust,
  stratified by ramp step; in shadow mode paired per ticket, on the urgent tickets both models scored), judged
  as the topic guardrails are (`guardrails.judge`, `breach_only`): urgent labels are few, so only a credible
  breach of `urgent_missed_margin` blocks a promotion and an unresolved one holds nothing.
- An arm whose model answered no priority on any of its priority-labelled requests (an older, one-head version
  logs it blank) "predicts no priority": its figures are n/a and the guardrail is not judged. When only some of
  its requests were answered by such a version (the alias moved within the window), those are left out of its
  figures (`unscored`), not counted wrong; in shadow mode the guardrail pairs the urgent tickets both models scored.

One aggregate per customer, arm and ramp step comes back from SQL (customers as 64-bit hashes: the statistics only
need to tell them apart), so a window of millions of labelled requests costs pandas a few hundred thousand rows.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis import inference
from analysis.arms import ratio
from analysis.compare import ramp_steps
from analysis.guardrails import NOT_APPLICABLE, TOPIC_MIN_CUSTOMERS, Guardrail, breach_only, judge
from analysis.prepare import NONE, PRIORITY_CODES, PRIORITY_PARTS, Prepared
from ticket_ab.names import ARMS, SHADOW
from ticket_ab.schema import PRIORITIES
from ticket_ab.settings import ABSettings

NAME = "urgent missed"
URGENT, MISSED = PRIORITIES[-1], PRIORITIES[:2]  # urgent answered as low or medium
MEASURED = "measured"
LABEL, ANSWER, SHADOW_ANSWER = PRIORITY_PARTS["label"], PRIORITY_PARTS["priority"], PRIORITY_PARTS["shadow_priority"]
_URGENT = PRIORITY_CODES[URGENT]  # the codes of `analysis.prepare`'s `priority_code`
_MISSED = ", ".join(str(PRIORITY_CODES[p]) for p in MISSED)


def cells(prepared: Prepared, mode: str) -> pd.DataFrame:
    """Per customer (`unit`, a hash), arm (`in_b`) and ramp step (`stratum`) of the analysed requests with a priority
    label: `labelled`, `n` (of those, scored: not answered by a version without a priority head), `correct`, `urgent`
    (scored and labelled urgent), `missed` (of those, answered low, medium or not at all), `answered` (by the arm's
    own model), `predicted` (of those, with a priority), and in shadow mode `pair_urgent` / `pair_missed` (the urgent
    tickets both models scored, and the arm's misses among them)."""
    if mode == SHADOW:
        return _shadow_cells(prepared)
    own = "topic <> '' AND fallback = ''"
    scored = f"NOT ({own} AND {ANSWER} = {NONE})"
    return prepared.frame(f"""SELECT hash(unit) AS unit, variant = 'B' AS in_b, period AS stratum,
        count(*) AS labelled, count(*) FILTER ({scored}) AS n, {_counts(ANSWER, scored)},
        count(*) FILTER ({own}) AS answered, count(*) FILTER ({own} AND {ANSWER} <> {NONE}) AS predicted
        FROM an WHERE priority_code IS NOT NULL AND variant IN ('A', 'B') GROUP BY ALL""")


def _counts(answer: str, scored: str, suffix: str = "") -> str:
    """The SQL counts of one answer (its code) against the priority label, on the `scored` rows (where a blank answer
    is an error or a failed shadow: wrong, and an urgent ticket left without a priority is missed)."""
    return (f"count(*) FILTER ({answer} = {LABEL}) AS correct{suffix}, "
            f"count(*) FILTER ({scored} AND {LABEL} = {_URGENT}) AS urgent{suffix}, "
            f"count(*) FILTER ({scored} AND {LABEL} = {_URGENT} AND {_missed(answer)}) AS missed{suffix}")


def _missed(answer: str) -> str:
    """An urgent ticket's answer that leaves it behind: low, medium or none."""
    return f"({answer} IN ({_MISSED}) OR {answer} = {NONE})"


def _shadow_cells(prepared: Prepared) -> pd.DataFrame:
    """`cells` in shadow mode, one row per arm, from the tickets both models were tried on (those `analysis.arms`
    counts). Each arm's figures are on the tickets it scored: A's answered with a priority, B's too plus its failures
    (wrong, and missed when urgent); the guardrail pairs the urgent tickets both scored."""
    scored_a, scored_b = f"{ANSWER} <> {NONE}", f"NOT (shadow_topic <> '' AND {SHADOW_ANSWER} = {NONE})"
    both = f"{scored_a} AND {scored_b} AND {LABEL} = {_URGENT}"
    paired = prepared.frame(f"""SELECT hash(unit) AS unit, period AS stratum, count(*) AS labelled,
        count(*) FILTER ({scored_a}) AS n_a, count(*) FILTER ({scored_b}) AS n_b,
        {_counts(ANSWER, scored_a, '_a')}, {_counts(SHADOW_ANSWER, scored_b, '_b')},
        count(*) FILTER ({SHADOW_ANSWER} <> {NONE}) AS predicted_b,
        count(*) FILTER (shadow_topic <> '') AS answered_b, count(*) FILTER ({both}) AS pair_urgent,
        count(*) FILTER ({both} AND {_missed(ANSWER)}) AS pair_missed_a,
        count(*) FILTER ({both} AND {_missed(SHADOW_ANSWER)}) AS pair_missed_b
        FROM an WHERE priority_code IS NOT NULL AND topic <> '' AND (shadow_topic <> '' OR fallback <> '')
        GROUP BY ALL""")
    arms = []
    for arm in ARMS:
        s = arm.lower()
        arms.append(pd.DataFrame({
            "unit": paired["unit"], "in_b": arm == "B", "stratum": paired["stratum"], "labelled": paired["labelled"],
            "n": paired[f"n_{s}"], "correct": paired[f"correct_{s}"], "urgent": paired[f"urgent_{s}"],
            "missed": paired[f"missed_{s}"], "answered": paired["labelled"] if arm == "A" else paired["answered_b"],
            "predicted": paired["n_a" if arm == "A" else "predicted_b"], "pair_urgent": paired["pair_urgent"],
            "pair_missed": paired[f"pair_missed_{s}"]}))
    return pd.concat(arms, ignore_index=True)


def judge_priority(prepared: Prepared, mode: str, versions: dict[str, list[str]], looks_n: int, th: ABSettings,
                   seq: bool) -> tuple[dict[str, dict[str, Any]], Guardrail]:
    """Per arm its priority figures (`versions`: the arm's model versions, for the n/a text), and the urgent-missed
    guardrail at the accuracy comparison's look (`looks_n` labelled requests)."""
    found = cells(prepared, mode)
    arms = {arm: arm_figures(found[found["in_b"] == (arm == "B")], versions[arm], th) for arm in ARMS}
    return arms, urgent_guardrail(found, mode, arms, looks_n, th, seq)


def arm_figures(rows: pd.DataFrame, versions: list[str], th: ABSettings) -> dict[str, Any]:
    """One arm's priority accuracy with its customer-level interval and its urgent-missed share, or n/a and why.

    Requests its model answered without a priority (a one-head version before or after a two-head one in the same
    window) are left out, counted in `unscored`: a version that cannot answer a priority did not answer it wrong.
    """
    n, correct, urgent, missed = (int(rows[c].sum()) for c in ("n", "correct", "urgent", "missed"))
    scored = rows[rows["n"] > 0]
    figures = {"status": MEASURED, "text": "", "labelled": n, "labelled_customers": int(scored["unit"].nunique()),
               "unscored": int(rows["labelled"].sum()) - n, "correct": correct, "accuracy": ratio(correct, n),
               "accuracy_ci": [math.nan, math.nan], "urgent": urgent, "urgent_missed": missed,
               "urgent_missed_rate": ratio(missed, urgent)}
    why = _not_measured(rows, versions)
    if why:  # nothing scored: every priority-labelled request counts as labelled, none as left out
        return figures | {"status": NOT_APPLICABLE, "text": why, "labelled": int(rows["labelled"].sum()),
                          "unscored": 0, "correct": 0, "accuracy": math.nan, "urgent_missed": 0,
                          "urgent_missed_rate": math.nan}
    figures["accuracy_ci"] = list(inference.proportion_interval(scored["correct"] / scored["n"], scored["unit"],
                                                                1 - th.alpha, counts=scored["n"]))
    return figures


def _not_measured(rows: pd.DataFrame, versions: list[str]) -> str:
    """Why an arm has no priority figures ('' when it has them)."""
    if not int(rows["labelled"].sum()):
        return "n/a: no priority feedback"
    if int(rows["answered"].sum()) and not int(rows["predicted"].sum()):
        named = ", ".join(f"v{v}" for v in versions) or "its version"
        return f"n/a: {named} predicts no priority"
    return ""


def urgent_guardrail(rows: pd.DataFrame, mode: str, arms: dict[str, dict[str, Any]], looks_n: int, th: ABSettings,
                     seq: bool) -> Guardrail:
    """B - A of the share of urgent-labelled requests answered low, medium or not at all, against `urgent_missed_margin`
    (higher is worse; only a breach blocks). Not judged ("n/a", with why) when an arm has no priority figures or
    either arm has fewer than TOPIC_MIN_CUSTOMERS customers with an urgent label (in shadow mode: with an urgent
    ticket both models scored)."""
    margin = th.urgent_missed_margin
    skipped = next((f"arm {arm} {arms[arm]['text']}" for arm in ARMS if arms[arm]["status"] != MEASURED), "")
    urgent = rows[rows["pair_urgent" if mode == SHADOW else "urgent"] > 0]
    customers = [int(urgent.loc[urgent["in_b"] == (arm == "B"), "unit"].nunique()) for arm in ARMS]
    if not skipped and min(customers) < TOPIC_MIN_CUSTOMERS:
        skipped = (f"{customers[0]} (A) and {customers[1]} (B) customers with an urgent label; it needs "
                   f"{TOPIC_MIN_CUSTOMERS} in each arm")
    if skipped:
        return Guardrail(NAME, NOT_APPLICABLE, math.nan, math.nan, math.nan, margin,
                         f"{NAME}: not judged: {skipped}")
    return breach_only(judge(NAME, _difference(urgent, mode), margin, looks_n, th, seq, higher_is_worse=True))


def _difference(urgent: pd.DataFrame, mode: str) -> inference.Estimate:
    """B - A of the urgent-missed share: paired per customer in shadow mode (the same tickets), else the arms'
    difference stratified by ramp step."""
    if mode == SHADOW:  # A's rows and B's hold the same tickets in the same order (`_shadow_cells`)
        a, b = urgent[~urgent["in_b"]], urgent[urgent["in_b"]]
        missed = b["pair_missed"].to_numpy(dtype=float) - a["pair_missed"].to_numpy(dtype=float)
        return inference.cluster_mean(missed / a["pair_urgent"].to_numpy(dtype=float), a["unit"].to_numpy(),
                                      counts=a["pair_urgent"].to_numpy())
    share = urgent["missed"].to_numpy(dtype=float) / urgent["urgent"].to_numpy(dtype=float)
    return inference.cluster_diff(share, urgent["in_b"].to_numpy(dtype=bool), urgent["unit"].to_numpy(),
                                  strata=ramp_steps(urgent), counts=urgent["urgent"].to_numpy())
