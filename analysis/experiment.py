"""From the router's request log and the agents' feedback to every number of the A/B report.

Pure: frames in (as `ticket_ab.requestlog` reads them), one JSON-ready summary out, so the report,
the console and the tests all see the same numbers. Definitions the report relies on:

- Arm A is the champion, arm B the challenger, as the router's `variant` column says.
- A request is *labelled* when feedback names its request_id, by the join rule the retraining
  window uses too (`ticket_ab.requestlog.latest_labels`): the last feedback per request
  wins; feedback for a request_id the log does not have is counted and dropped.
- Accuracy of an arm = share of its labelled requests whose answer equals the label, by
  intention-to-treat: every request assigned to B counts for B, also when the challenger failed and
  the champion answered (a fallback), and a request with no answer counts as wrong. In shadow mode
  both models answer every request, so B is the logged shadow prediction on the same tickets (a
  failed shadow prediction is wrong) and the comparison is paired.
- The router assigns sticky by customer (ticket id for anonymous requests, request id without
  either), so the customer is the unit of every interval and test (`analysis.inference`): the
  sample-ratio test counts distinct customers per arm, not requests, and the accuracy intervals
  are clustered by customer. A customer seen in both arms of the analysed period (crossover, e.g.
  workers that picked up a split change at different moments) is counted, reported and excluded.
- A period is one experiment configuration: mode, split, champion version and challenger version.
  The log records the challenger's version only on rows it answered, so a row's challenger is
  the latest one seen answering before it (none before the first): traffic served before a
  challenger existed, or after it was promoted, is not part of its test even when the configured
  split never changed. The comparison uses the latest experiment with a challenger (a new "phase", as
  GrowthBook calls it): the periods with its mode, champion and challenger, which differ only in the
  split (the ramp steps). Those are pooled *stratified* (each step compares its own B with its own
  A, see `analysis.compare`), never naively: pooling steps with different splits mixes different
  weeks' traffic into the arms in different proportions, which can manufacture or hide a difference.
  Every period is reported on its own. A customer who moved from A to B at a later step is no
  crossover: crossover is counted within each period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis import covariate, guardrails
from analysis.arms import answered_by, authenticated_only, mean, outcomes, ratio, summarize, without_crossover
from analysis.compare import compare
from analysis.fmt import num, split_share, when
from analysis.verdict import Evidence, decide
from retrain.ml import stats
from ticket_ab.names import ARMS, SHADOW, SPLIT
from ticket_ab.requestlog import ANONYMOUS, latest_labels
from ticket_ab.settings import ABSettings

SHADOW_SHARE = 0.9  # how reliably a shadow row carries the challenger's answer, for the lead-in rule
LEAD_IN_P = 0.001  # champion-only rows before a challenger's first answer: longer than chance -> not its test


class AnalysisError(ValueError):
    """There is nothing to analyse; the message says what is missing and what to do."""


@dataclass
class Analysis:
    """The summary (everything the JSON holds) and the rows the figure draws from."""

    summary: dict[str, Any]
    window: pd.DataFrame  # every request in the window, with `label` (missing when unlabelled)
    analysed: pd.DataFrame  # the requests of the current configuration period, with `label`


def analyse(
    requests: pd.DataFrame,
    feedback: pd.DataFrame,
    *,
    malformed_requests: int = 0,
    malformed_feedback: int = 0,
    since: pd.Timestamp | None = None,
    thresholds: ABSettings | None = None,
    sequential: bool = True,
    scorer: covariate.Scorer | None = None,
) -> Analysis:
    """Join, split into arms, test, decide: always-valid intervals unless `sequential` is False, adjusted
    on the champion's confidence when a `scorer` can score it. AnalysisError only without requests."""
    thresholds = thresholds or ABSettings()
    notes: list[str] = []
    if malformed_requests or malformed_feedback:
        notes.append(f"skipped malformed log lines: {malformed_requests} in the request log, "
                     f"{malformed_feedback} in the feedback log (torn writes or hand edits)")
    requests, window = _requests_in_window(requests, since, notes)
    labels, dropped = latest_labels(feedback, set(requests["request_id"]))
    window = window.assign(label=window["request_id"].map(labels.set_index("request_id")["label"]))
    notes.extend(_feedback_notes(dropped))
    periods = _periods(window, thresholds)
    current, analysed = _current_experiment(window, periods, notes)
    if len(periods) > 1:
        notes.append(_periods_note(window, periods, current, analysed))
    mode = current["mode"]
    analysed, crossover = without_crossover(analysed, within="period")
    notes.extend(_crossover_notes(crossover))
    arms = {arm: summarize(analysed, arm, mode, thresholds) for arm in ARMS}
    scored, unadjusted = covariate.attach(analysed, mode, current["champion"], scorer)
    notes += [unadjusted] if unadjusted else []
    rows = covariate.with_prior(outcomes(scored, mode), window, analysed, mode, thresholds.prior_strength)
    comparison = compare(rows, mode, arms, thresholds, sequential)
    checks = guardrails.check(analysed, mode, comparison["n_a"] + comparison["n_b"], thresholds, sequential)
    notes.extend(_data_notes(analysed, arms, mode))
    verdict = decide(Evidence(
        n_a=comparison["n_a"], n_b=comparison["n_b"], diff=comparison["diff"], ci_low=comparison["ci_low"],
        ci_high=comparison["ci_high"], needed_more=comparison["evidence"]["more_labelled"],
        srm_flagged=bool(current["srm"]["flagged"]), srm_p=current["srm"]["p_value"], guardrails=checks,
        sequential=sequential), thresholds)
    summary = {
        "window": _window(since, window, analysed),
        "data": _data_counts(requests, window, analysed, feedback, dropped, malformed_requests, malformed_feedback),
        "mode": mode,
        "config": {"current": {k: current[k] for k in ("mode", "split_b", "champion", "challenger")},
                   "changed": len(periods) > 1,
                   "periods": [{k: v for k, v in p.items() if k != "key"} for p in periods]},
        "arms": arms,
        "srm": current["srm"],
        "step": _step(analysed, current),
        "crossover": crossover,
        "comparison": comparison,
        "guardrails": [g.as_dict() for g in checks],
        "verdict": {"action": verdict.action, "text": verdict.text, "reason": verdict.reason,
                    "more_per_arm": verdict.more_per_arm},
        "thresholds": thresholds.model_dump(),
        "notes": notes,
    }
    return Analysis(summary=summary, window=window, analysed=analysed)


def _window(since: pd.Timestamp | None, window: pd.DataFrame, analysed: pd.DataFrame) -> dict[str, str | None]:
    return {"since": since.isoformat() if since is not None else None,
            "first": _iso(window["timestamp"].min()), "last": _iso(window["timestamp"].max()),
            "analysed_from": _iso(analysed["timestamp"].min()), "analysed_to": _iso(analysed["timestamp"].max())}


def _requests_in_window(requests: pd.DataFrame, since: pd.Timestamp | None,
                        notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every request (cleaned) and the counted ones at or after `since` (authenticated only, once any is: a
    note says how many were not); an AnalysisError when either is empty."""
    if requests.empty:
        raise AnalysisError("the request log has no rows yet: send traffic through the router first "
                            "(python load_test/testing.py --url http://127.0.0.1:8000 --n 1000)")
    requests = _clean_requests(requests)
    window = requests if since is None else requests[requests["timestamp"] >= since]
    if window.empty:
        raise AnalysisError(f"no requests at or after --since {since.isoformat()} "
                            f"(the log covers {_span(requests)})")
    window, anonymous = authenticated_only(window)
    if anonymous:
        notes.append(f"{anonymous} anonymous requests (no client token) are left out: the router takes client "
                     "tokens, so only authenticated traffic counts")
    return requests, window


def _feedback_notes(dropped: dict[str, int]) -> list[str]:
    """What the join rule (`latest_labels`) set aside, in the words a reader of the report needs."""
    notes = []
    if dropped["unknown_request"]:
        notes.append(f"dropped {dropped['unknown_request']} feedback rows whose request_id is not "
                     "in the request log read (sent before --since, an expired log day, or a different router)")
    if dropped["superseded"]:
        notes.append(f"{dropped['superseded']} feedback rows were corrected by a later one for the "
                     "same request; the last one counts")
    return notes


def _crossover_notes(crossover: dict[str, int]) -> list[str]:
    if not crossover["customers"]:
        return []
    return [f"{crossover['customers']} customers ({crossover['requests']} requests) were served by both arms within "
            "one period (crossover); they are excluded from every number of the comparison"]


def _current_experiment(window: pd.DataFrame, periods: list[dict[str, Any]],
                        notes: list[str]) -> tuple[dict[str, Any], pd.DataFrame]:
    """The latest period with a challenger (or the latest one, when none had) and the requests of its
    experiment: every period with the same mode and models (the ramp steps), without an integration the
    latest step's sample-ratio check left out (a note names it)."""
    tested = window[window["challenger"] != ""]
    key = (tested if len(tested) else window)["period"].iloc[-1]
    current = next(p for p in periods if p["key"] == key)
    steps = [p["key"] for p in periods if _experiment(p) == _experiment(current)]
    excluded = current["srm"]["excluded"]
    if excluded:
        notes.append(f"left out of the comparison: integration {', '.join(excluded)}, whose own customers do not "
                     "match the split (sample-ratio mismatch) while the others' do")
    return current, window[window["period"].isin(steps) & ~window["integration"].isin(excluded)]


def _experiment(period: dict[str, Any]) -> tuple[str, str, str]:
    return period["mode"], period["champion"], period["challenger"]


def _step(analysed: pd.DataFrame, current: dict[str, Any]) -> dict[str, Any]:
    """The current ramp step: its split and its labelled customers per arm (what a ramp waits for)."""
    rows = analysed[(analysed["period"] == current["key"]) & analysed["label"].notna()]
    return {"split_b": current["split_b"], "since": current["start"],
            "labelled_customers": {arm: int(rows.loc[rows["variant"] == arm, "unit"].nunique()) for arm in ARMS}}


def _periods_note(window: pd.DataFrame, periods: list[dict[str, Any]], current: dict[str, Any],
                  analysed: pd.DataFrame) -> str:
    """Why the comparison uses fewer requests than the window holds, and how to choose others."""
    newest = "" if current["key"] == window["period"].iloc[-1] else (
        "; the newest requests ran without a challenger (promoted or removed since?)")
    steps = analysed["period"].nunique()
    pooled = f", its {steps} ramp steps pooled as strata" if steps > 1 else ""
    return (f"the experiment configuration changed during the window ({len(periods)} periods, see the "
            f"table); the comparison uses the {num(len(analysed))} requests of the latest experiment with a "
            f"challenger ({_describe(current)}{pooled}){newest}; pass --since to choose another window")


def _data_counts(requests: pd.DataFrame, window: pd.DataFrame, analysed: pd.DataFrame, feedback: pd.DataFrame,
                 dropped: dict[str, int], malformed_requests: int, malformed_feedback: int) -> dict[str, int]:
    """Every row count from the log to the comparison, so a reader can follow where rows went."""
    return {
        "requests_in_log": int(len(requests)),
        "requests_in_window": int(len(window)),
        "requests_analysed": int(len(analysed)),
        "malformed_request_rows": int(malformed_requests),
        "feedback_rows": int(len(feedback)),
        "malformed_feedback_rows": int(malformed_feedback),
        "feedback_superseded": dropped["superseded"],
        "feedback_unknown_request": dropped["unknown_request"],
        "labelled_in_window": int(window["label"].notna().sum()),
        "labelled_analysed": int(analysed["label"].notna().sum()),
    }


def _clean_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Sorted by time, one row per request id (a client retry after a lost answer can log a request
    twice: the first row counts), with each row's assignment unit, models in service and period spelled out."""
    out = requests.sort_values("timestamp", kind="stable")
    out = out[~(out["request_id"].duplicated(keep="first") & out["request_id"].ne(""))].reset_index(drop=True)
    out["mode"] = out["mode"].where(out["mode"].isin([SPLIT, SHADOW]), SPLIT)
    integration = out["integration"] if "integration" in out else pd.Series("", index=out.index)
    out["integration"] = integration.where(integration != "", ANONYMOUS)  # files from before the column
    customer = out["customer_id"].where(out["customer_id"] != "", out["ticket_id"])
    out["unit"] = customer.where(customer != "", out["request_id"])
    out["split_b"] = out["split_b"].round(6)
    by_challenger = (out["variant"] == "B") & (out["fallback"] == "") & (out["topic"] != "")
    seen = out["model_version"].where(by_challenger, out["shadow_version"])
    out["champion"] = _latest(out["model_version"].where(~by_challenger, "")).replace("", np.nan).bfill().fillna("")
    challenger = _with_lead_in(_latest(seen), by_challenger, out["split_b"].where(out["mode"] == SPLIT, SHADOW_SHARE))
    out["challenger"] = challenger.where(challenger != out["champion"], "")  # promoted: no challenger any more
    split = out["split_b"].where(out["mode"] == SPLIT)
    out["period"] = (out["mode"] + ":" + split.map(lambda s: "" if pd.isna(s) else f"{s:g}") + ":A" + out["champion"]
                     + ":B" + out["challenger"])
    return out


def _with_lead_in(challenger: pd.Series, answered: pd.Series, share_b: pd.Series) -> pd.Series:
    """Give a new challenger the champion-only rows just before its first answer, when that run is
    short enough to be chance (below LEAD_IN_P) at the share B was getting; a longer run was served
    before the challenger existed and is not part of its test."""
    out = challenger.to_numpy(dtype=object).copy()
    firsts = np.flatnonzero((challenger != challenger.shift()).to_numpy() & (challenger != "").to_numpy())
    for i in firsts:
        p = float(share_b.iloc[i]) if pd.notna(share_b.iloc[i]) else 0.0
        longest = int(math.log(LEAD_IN_P) / math.log(1 - p)) if 0 < p < 1 else 0
        j = i
        while j > 0 and i - j <= longest and not answered.iloc[j - 1]:
            j -= 1
        if 0 < i - j <= longest:
            out[j:i] = out[i]
    return pd.Series(out, index=challenger.index)


def _latest(versions: pd.Series) -> pd.Series:
    """The last non-empty version seen at or before each row ("" before the first)."""
    return versions.replace("", np.nan).ffill().fillna("")


def _periods(window: pd.DataFrame, th: ABSettings) -> list[dict[str, Any]]:
    """One entry per configuration (mode, split, models) in order of first use, with its own SRM test.

    Grouping by value, not by consecutive runs, because gunicorn workers pick up a new split a few
    seconds apart, which interleaves rows of both configurations around every change.
    """
    periods = []
    for key in pd.unique(window["period"]):
        rows = window[window["period"] == key]
        mode = rows["mode"].iloc[0]
        split_b = None if mode == SHADOW or pd.isna(rows["split_b"].iloc[0]) else float(rows["split_b"].iloc[0])
        srm = _srm(rows, split_b, th) if mode == SPLIT else _no_srm("shadow mode: every request is scored by both")
        answers = {arm: answered_by(rows, arm, mode) for arm in ARMS}
        by_arm = {arm: (a["answer"] == a["label"])[a["label"].notna()] for arm, a in answers.items()}
        periods.append({
            "key": key, "mode": mode, "split_b": split_b,
            "champion": rows["champion"].iloc[0], "challenger": rows["challenger"].iloc[0],
            "start": _iso(rows["timestamp"].min()), "end": _iso(rows["timestamp"].max()),
            "requests": int(len(rows)),
            "requests_b": int((rows["variant"] == "B").sum()),
            "srm": srm,
            "labelled": {arm: int(len(by_arm[arm])) for arm in ARMS},
            "accuracy": {arm: mean(by_arm[arm]) for arm in ARMS},
        })
    return periods


def _srm(rows: pd.DataFrame, split_b: float | None, th: ABSettings) -> dict[str, Any]:
    """Distinct assignment units per arm (crossover customers left out) against the configured split,
    for each integration and for them together.

    One client can pick customers of one arm (the answer names it, the hash is public), so an
    integration whose own units mismatch the split while the others' together do not is left out
    (`excluded`) and the test is of the others: one integration cannot fire the check, nor move it.
    """
    if split_b is None:
        return _no_srm("the log does not record the configured split")
    if not 0 < split_b < 1:
        return _no_srm(f"a split of {split_share(split_b)} to B sends everything to one arm")
    units = without_crossover(rows)[0]
    units = units[units["variant"].isin(ARMS)].drop_duplicates(["unit", "variant", "integration"])
    both_arms = units["variant"].nunique() == len(ARMS)  # then one integration's empty arm is a mismatch too
    by_integration = {str(name): _srm_test(group, split_b, th, one_arm_testable=both_arms)
                      for name, group in units.groupby("integration")}
    flagged = [name for name, test in by_integration.items() if test["flagged"]]
    rest = units[~units["integration"].isin(flagged)]
    excluded = flagged if flagged and len(rest) and not _srm_test(rest, split_b, th)["flagged"] else []
    return {**_srm_test(units[~units["integration"].isin(excluded)], split_b, th),
            "by_integration": by_integration, "excluded": excluded}


def _srm_test(units: pd.DataFrame, split_b: float, th: ABSettings, one_arm_testable: bool = False) -> dict[str, Any]:
    """The chi-square test of the distinct units per arm in `units` (one row per unit, arm and integration)."""
    units = units.drop_duplicates(["unit", "variant"])
    observed = [int((units["variant"] == arm).sum()) for arm in ARMS]
    if 0 in observed and not one_arm_testable:
        return _no_srm("only one arm has traffic, so the split cannot be tested (no challenger loaded?)")
    result = stats.srm_test(observed, [1 - split_b, split_b], alpha=th.srm_alpha)
    return {"applicable": True, "unit": "customer", "observed": dict(zip(ARMS, observed, strict=True)),
            "expected_share_b": split_b, "observed_share_b": ratio(observed[1], sum(observed)),
            "chi2": result.chi2, "p_value": result.p_value, "flagged": result.flagged, "why": ""}


def _no_srm(why: str) -> dict[str, Any]:
    return {"applicable": False, "unit": "customer", "observed": {}, "expected_share_b": None,
            "observed_share_b": None, "chi2": math.nan, "p_value": math.nan, "flagged": False, "why": why,
            "by_integration": {}, "excluded": []}


def _data_notes(rows: pd.DataFrame, arms: dict[str, Any], mode: str) -> list[str]:
    """Plain-language warnings about what the data cannot support."""
    notes = []
    if rows["label"].notna().sum() == 0:
        notes.append("no feedback yet: accuracies and the comparison need agents' labels "
                     "(POST /feedback, or load_test/testing.py --feedback-rate 0.3)")
    if arms["B"]["answered"] == 0 and len(rows):
        hint = ("no shadow predictions were logged: is a challenger registered?" if mode == SHADOW
                else "check that a challenger is registered and the split is above 0 (GET /config)")
        notes.append(f"only one arm has answers: arm B (challenger) answered no requests; {hint}")
    elif arms["A"]["answered"] == 0 and len(rows):
        notes.append("only one arm has answers: arm A (champion) answered no requests; with a split of 1.0, or "
                     "very few requests, there is nothing to compare yet")
    fallbacks = arms["B"]["fallbacks"]
    if fallbacks and mode == SHADOW:
        notes.append(f"the challenger failed on {fallbacks} shadow requests; they count as wrong answers of B "
                     "in the paired comparison (see the router log for 'challenger_error')")
    elif fallbacks:
        notes.append(f"arm B: {fallbacks} requests fell back to the champion (the challenger failed); by "
                     "intention-to-treat they count for arm B, with the champion's answer")
    return notes


def _iso(ts: pd.Timestamp) -> str | None:
    return None if pd.isna(ts) else ts.isoformat()


def _span(rows: pd.DataFrame) -> str:
    return f"{_iso(rows['timestamp'].min())} to {_iso(rows['timestamp'].max())}"


def _describe(period: dict[str, Any]) -> str:
    models = f"champion v{period['champion'] or '?'} vs challenger v{period['challenger'] or '?'}"
    since = f"from {when(period['start'])} UTC"
    if period["mode"] == SHADOW:
        return f"{models} in shadow mode, {since}"
    return f"{models}, split {split_share(period['split_b'])} to B, {since}"
