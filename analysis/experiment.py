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
- Priority (two-head versions) is a secondary metric, the same way per arm on the requests with a priority label,
  and its regression on urgent tickets a guardrail (`analysis.priority`); the topic alone decides the test.
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

Both logs are read into DuckDB (`ticket_ab.logscan`) and every row-level step above runs there
(`analysis.prepare`, `analysis.traffic`): only aggregates and the comparison's labelled requests reach
pandas, so a window of tens of millions of requests is analysed in bounded memory. `analyse` runs the
same SQL on frames already in memory (the in-memory path), `analyse_logs` on the log files.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import covariate, guardrails, priority, scatter, sources, traffic
from analysis.arms import outcomes, pooled, quality, ratio
from analysis.compare import compare
from analysis.fmt import num, split_share, when
from analysis.prepare import Prepared, prepare
from analysis.verdict import Evidence, decide
from retrain.ml import stats
from ticket_ab import logscan
from ticket_ab.logstore import FEEDBACK, REQUESTS
from ticket_ab.names import ARMS, SHADOW, SPLIT
from ticket_ab.settings import ABSettings

STATISTICS_SHARE = 2  # once the window is prepared, DuckDB keeps 1/2 of TICKET_AB_TEST_MEMORY_MB for the aggregates
NO_REQUESTS = ("the request log has no rows yet: send traffic through the router first "
               "(python load_test/testing.py --url http://127.0.0.1:8000 --n 1000)")


class AnalysisError(ValueError):
    """There is nothing to analyse; the message says what is missing and what to do."""


@dataclass
class Analysis:
    """The summary (everything the JSON holds) and what the figure, the sources check and the watch need."""

    summary: dict[str, Any]
    scores: pd.Series  # CUPAC's offline scores of the labelled requests the router logged none for, by `rid`
    series: dict[str, Any] = field(default_factory=dict)  # the figure's aggregates (`traffic.series`, latency)
    champion_answers: pd.DataFrame | None = None  # the window's labelled answers of arm A (the watch)
    files: dict[str, list[Path]] = field(default_factory=dict)  # per log, the files read (empty: from frames)
    serving: list[guardrails.Guardrail] = field(default_factory=list)  # the label-free guardrails (sources reuse them)


@dataclass(frozen=True)
class Options:
    """How to judge: the thresholds, always-valid intervals or not, and who scores CUPAC's covariate."""

    thresholds: ABSettings = field(default_factory=ABSettings)
    sequential: bool = True
    scorer: covariate.Scorer | None = None


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
    """The in-memory path: frames as `ticket_ab.requestlog` reads them, judged by the same SQL as the files.
    Always-valid intervals unless `sequential` is False, adjusted on the champion's confidence when a
    `scorer` can score it. AnalysisError only without requests."""
    if requests.empty:
        raise AnalysisError(NO_REQUESTS)
    options = Options(thresholds or ABSettings(), sequential, scorer)
    with logscan.connect(options.thresholds.memory_mb) as con:
        scan = logscan.frames(con, requests, feedback)
        scan.malformed = {REQUESTS: malformed_requests, FEEDBACK: malformed_feedback}
        return judge(prepare(con, None), scan, since, options)


def analyse_logs(logs: Path, feedback_logs: Path, since: pd.Timestamp | None, options: Options) -> Analysis:
    """The out-of-core path: the log files of the days from `since` on, scanned where they lie; their raw rows
    typed in this process, or day by day on a dask cluster (TICKET_AB_TEST_PREPARE_ENGINE=dask, `analysis.scatter`:
    the same report, with a note saying where the rows were typed). A scheduler that cannot be used is a
    `scatter.ClusterError`."""
    th = options.thresholds
    with logscan.connect(th.memory_mb) as con, ExitStack() as typed:
        if th.prepare_engine == scatter.DASK:
            window = typed.enter_context(scatter.prepared_on_dask(con, logs, feedback_logs, since, th))
            scan, prepared, statement = window.scan, window.prepared, window.statement
        else:
            scan, statement = logscan.files(con, logs, feedback_logs, since), ""
            prepared = prepare(con, since)
        if not prepared.counts["requests"]:
            raise AnalysisError(NO_REQUESTS if since is None
                                else f"no requests at or after --since {since.isoformat()}")
        analysis = judge(prepared, scan, since, options)
        analysis.summary["notes"] += [statement] if statement else []
        analysis.files = scan.files
        return analysis


def judge(prepared: Prepared, scan: logscan.Scan, since: pd.Timestamp | None, options: Options) -> Analysis:
    """Join, split into arms, test, decide: every number of the report from the prepared window."""
    th = options.thresholds
    malformed = {REQUESTS: scan.malformed.get(REQUESTS, 0) + prepared.counts["unreadable_stamps"],
                 FEEDBACK: scan.malformed.get(FEEDBACK, 0) + prepared.counts["unreadable_feedback_stamps"]}
    notes = _window_notes(prepared, since, malformed)
    periods = _periods(prepared, th)
    current, crossover = _current_experiment(prepared, periods, notes)
    bounds = traffic.bounds(prepared)
    if len(periods) > 1:
        latest = prepared.value("SELECT arg_max(period, (ts, ord)) FROM win")
        notes.append(_periods_note(periods, current, bounds, latest))
    mode = current["mode"]
    notes.extend(_crossover_notes(crossover))
    names = traffic.sources(prepared)
    names = names if len(names) > 1 else []
    traffic.labels(prepared, names)
    # the window's tables are built (but for `lab_cells`, which needs no more); the rest are aggregates of them, and
    # a buffer pool left at the cap would sit in memory beside the statistics (at 10M requests about 250 MB of the
    # 1 GiB budget); exact quantiles, which hold an arm's every latency, get the whole cap back while they run
    # (`Prepared.whole`)
    prepared.lower(th.memory_mb, th.memory_mb // STATISTICS_SHARE)
    traffic.label_cells(prepared, len(names))
    adjust = options.scorer is not None and mode == SPLIT and 0 < bounds["labelled_analysed"] and (
        traffic.unlogged_confidence(prepared) <= th.cupac_max_scored)
    arms, comparison, topics, scores = _labelled(prepared, current, adjust, options, notes)
    looks = comparison["n_a"] + comparison["n_b"]
    serving = guardrails.serving(prepared, mode, looks, th, options.sequential,
                                 {arm: arms[arm]["latency_ms"] for arm in ARMS})
    priorities, urgent = priority.judge_priority(prepared, mode, {arm: arms[arm]["versions"] for arm in ARMS}, looks,
                                                 th, options.sequential)
    for arm in ARMS:
        arms[arm]["priority"] = priorities[arm]
    checks = serving + topics + [urgent]
    notes.extend(_data_notes(bounds, arms, mode))
    verdict = decide(Evidence(
        n_a=comparison["n_a"], n_b=comparison["n_b"], diff=comparison["diff"], ci_low=comparison["ci_low"],
        ci_high=comparison["ci_high"], needed_more=comparison["evidence"]["more_labelled"],
        srm_flagged=bool(current["srm"]["flagged"]), srm_p=current["srm"]["p_value"], guardrails=checks,
        sequential=options.sequential), th)
    summary = {
        "window": _window(since, bounds), "data": _data_counts(prepared.counts, bounds, malformed), "mode": mode,
        "config": {"current": {k: current[k] for k in ("mode", "split_b", "champion", "challenger")},
                   "changed": len(periods) > 1,
                   "periods": [{k: v for k, v in p.items() if k != "key"} for p in periods]},
        "arms": arms, "srm": current["srm"],
        "step": {"split_b": current["split_b"], "since": current["start"],
                 "labelled_customers": traffic.step_customers(prepared, current["key"])},
        "crossover": crossover, "comparison": comparison, "guardrails": [g.as_dict() for g in checks],
        "verdict": {"action": verdict.action, "text": verdict.text, "reason": verdict.reason,
                    "more_per_arm": verdict.more_per_arm},
        "thresholds": th.model_dump(), "notes": notes,
    }
    analysis = Analysis(summary=summary, scores=scores, series=_series(prepared, bounds, mode),
                        champion_answers=traffic.champion_answers(prepared), serving=serving)
    _check_sources(prepared, analysis, options, partial(_without_source, prepared, names, adjust))
    return analysis


def _labelled(prepared: Prepared, current: dict[str, Any], adjust: bool, options: Options,
              notes: list[str]) -> tuple[dict[str, Any], dict[str, Any], list[guardrails.Guardrail], pd.Series]:
    """The arms' quality, the comparison and the per-topic guardrails from the labelled cells, and CUPAC's offline
    scores (a note says why when the comparison is unadjusted). The cells go when this returns: the leave-one-source-
    out checks that follow make their own, and a 10M window's would otherwise sit beside them."""
    th, mode = options.thresholds, current["mode"]
    labelled = traffic.cells(prepared, "label", adjust)
    arms = {arm: quality(labelled, arm, mode, th, traffic.arm(prepared, arm, mode)) for arm in ARMS}
    labelled, unadjusted = covariate.attach(labelled, mode, current["champion"], options.scorer,
                                            lambda rids: traffic.texts(prepared, rids), th.cupac_max_scored)
    notes += [unadjusted] if unadjusted else []
    rows = covariate.with_prior(pooled(outcomes(labelled, mode)), traffic.earlier(prepared), mode, th.prior_strength)
    comparison = compare(rows, mode, arms, th, options.sequential)
    topics = guardrails.topic_guardrails(labelled, mode, comparison["n_a"] + comparison["n_b"], th,
                                         options.sequential)
    return arms, comparison, topics, covariate.scored(labelled)


def _window_notes(prepared: Prepared, since: pd.Timestamp | None, malformed: dict[str, int]) -> list[str]:
    """View `win` (`traffic.window`) and the notes on what it leaves out; an AnalysisError when it is empty."""
    notes = []
    if malformed[REQUESTS] or malformed[FEEDBACK]:
        notes.append(f"skipped malformed log lines: {malformed[REQUESTS]} in the request log, "
                     f"{malformed[FEEDBACK]} in the feedback log (torn writes or hand edits)")
    anonymous = traffic.window(prepared, since)
    if not prepared.value("SELECT count(*) FROM win"):
        raise AnalysisError(f"no requests at or after --since {since.isoformat()}" if since is not None
                            else "the request log has no rows in the window")
    if anonymous:
        notes.append(f"{anonymous} anonymous requests (no client token) are left out: the router takes client "
                     "tokens, so only authenticated traffic counts")
    return notes + _feedback_notes(prepared.counts)


def _without_source(prepared: Prepared, names: list[str], adjust: bool, source: str) -> pd.DataFrame:
    """The labelled cells with the label each request has without `source`'s feedback (`traffic.cells`)."""
    return traffic.cells(prepared, f"without_{names.index(source)}", adjust)


def _check_sources(prepared: Prepared, analysis: Analysis, options: Options,
                   without: Callable[[str], pd.DataFrame]) -> None:
    """The summary's `label_sources` (`analysis.sources`), and its statement among the notes when a source decides."""
    rule = sources.Rule(options.thresholds, options.sequential)
    label_sources = sources.check(analysis, rule, traffic.source_shares(prepared), without)
    analysis.summary["label_sources"] = label_sources
    if label_sources["deciding"]:
        analysis.summary["notes"].append(label_sources["statement"])


def _series(prepared: Prepared, bounds: dict[str, Any], mode: str) -> dict[str, Any]:
    """The figure's aggregates: the split panel's buckets and the latency histogram."""
    span = pd.Timestamp(bounds["last"]) - pd.Timestamp(bounds["first"])
    width, name = traffic.bucket_seconds(span)
    return {**traffic.series(prepared, width), "bucket": name, "bucket_s": width,
            "latency": traffic.latency_histogram(prepared, ["A"] if mode == SHADOW else list(ARMS))}


def _window(since: pd.Timestamp | None, bounds: dict[str, Any]) -> dict[str, str | None]:
    return {"since": since.isoformat() if since is not None else None, "first": _iso(bounds["first"]),
            "last": _iso(bounds["last"]), "analysed_from": _iso(bounds["analysed_from"]),
            "analysed_to": _iso(bounds["analysed_to"])}


def _feedback_notes(counts: dict[str, int]) -> list[str]:
    """What the join rule (`latest_labels`) set aside, in the words a reader of the report needs."""
    notes = []
    if counts["unknown_request"]:
        notes.append(f"dropped {counts['unknown_request']} feedback rows whose request_id is not "
                     "in the request log read (sent before --since, an expired log day, or a different router)")
    if counts["superseded"]:
        notes.append(f"{counts['superseded']} feedback rows were corrected by a later one for the "
                     "same request; the last one counts")
    return notes


def _crossover_notes(crossover: dict[str, int]) -> list[str]:
    if not crossover["customers"]:
        return []
    return [f"{crossover['customers']} customers ({crossover['requests']} requests) were served by both arms within "
            "one period (crossover); they are excluded from every number of the comparison"]


def _current_experiment(prepared: Prepared, periods: list[dict[str, Any]],
                        notes: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """The latest period with a challenger (or the latest one, when none had) and view `an` of its experiment:
    every period with the same mode and models (the ramp steps), without an integration the latest step's
    sample-ratio check left out (a note names it) and without crossover customers."""
    key = traffic.current(prepared)
    current = next(p for p in periods if p["key"] == key)
    steps = [p["key"] for p in periods if _experiment(p) == _experiment(current)]
    excluded = current["srm"]["excluded"]
    if excluded:
        notes.append(f"left out of the comparison: integration {', '.join(excluded)}, whose own customers do not "
                     "match the split (sample-ratio mismatch) while the others' do")
    crossover = traffic.analysed(prepared, steps, excluded)
    return current, crossover


def _experiment(period: dict[str, Any]) -> tuple[str, str, str]:
    return period["mode"], period["champion"], period["challenger"]


def _periods_note(periods: list[dict[str, Any]], current: dict[str, Any], bounds: dict[str, Any], latest: str) -> str:
    """Why the comparison uses fewer requests than the window holds, and how to choose others."""
    newest = "" if current["key"] == latest else (
        "; the newest requests ran without a challenger (promoted or removed since?)")
    steps = sum(1 for p in periods if _experiment(p) == _experiment(current))
    pooled = f", its {steps} ramp steps pooled as strata" if steps > 1 else ""
    return (f"the experiment configuration changed during the window ({len(periods)} periods, see the "
            f"table); the comparison uses the {num(bounds['analysed'])} requests of the latest experiment with a "
            f"challenger ({_describe(current)}{pooled}){newest}; pass --since to choose another window")


def _data_counts(counts: dict[str, int], bounds: dict[str, Any], malformed: dict[str, int]) -> dict[str, int]:
    """Every row count from the log to the comparison, so a reader can follow where rows went."""
    return {
        "requests_in_log": counts["requests"],
        "requests_in_window": int(bounds["window"]),
        "requests_analysed": int(bounds["analysed"]),
        "malformed_request_rows": int(malformed[REQUESTS]),
        "feedback_rows": counts["feedback_rows"],
        "malformed_feedback_rows": int(malformed[FEEDBACK]),
        "feedback_superseded": counts["superseded"],
        "feedback_unknown_request": counts["unknown_request"],
        "labelled_in_window": int(bounds["labelled_window"]),
        "labelled_analysed": int(bounds["labelled_analysed"]),
    }


def _periods(prepared: Prepared, th: ABSettings) -> list[dict[str, Any]]:
    """One entry per configuration (mode, split, models) in order of first use, with its own SRM test.

    Grouping by value, not by consecutive runs, because gunicorn workers pick up a new split a few
    seconds apart, which interleaves rows of both configurations around every change.
    """
    found = traffic.periods(prepared)
    periods = []
    for p in found.itertuples(index=False):
        split_b = None if p.mode == SHADOW or pd.isna(p.split_b) else float(p.split_b)
        srm = (_srm(traffic.assignment_units(prepared, p.key), split_b, th) if p.mode == SPLIT
               else _no_srm("shadow mode: every request is scored by both"))
        periods.append({
            "key": p.key, "mode": p.mode, "split_b": split_b, "champion": p.champion, "challenger": p.challenger,
            "start": _iso(p.start), "end": _iso(p.end), "requests": int(p.requests), "requests_b": int(p.requests_b),
            "srm": srm,
            "labelled": {arm: int(getattr(p, f"labelled_{arm}")) for arm in ARMS},
            "accuracy": {arm: _float(getattr(p, f"accuracy_{arm}")) for arm in ARMS},
        })
    return periods


def _srm(units: pd.DataFrame, split_b: float | None, th: ABSettings) -> dict[str, Any]:
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
    units = units[units["variant"].isin(ARMS)]
    crossed = units.groupby("unit")["variant"].nunique()
    units = units[~units["unit"].isin(crossed.index[crossed > 1])]
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
            "observed_share_b": None, "chi2": float("nan"), "p_value": float("nan"), "flagged": False, "why": why,
            "by_integration": {}, "excluded": []}


def _data_notes(bounds: dict[str, Any], arms: dict[str, Any], mode: str) -> list[str]:
    """Plain-language warnings about what the data cannot support."""
    notes = []
    if bounds["labelled_analysed"] == 0:
        notes.append("no feedback yet: accuracies and the comparison need agents' labels "
                     "(POST /feedback, or load_test/testing.py --feedback-rate 0.3)")
    if arms["B"]["answered"] == 0 and bounds["analysed"]:
        hint = ("no shadow predictions were logged: is a challenger registered?" if mode == SHADOW
                else "check that a challenger is registered and the split is above 0 (GET /config)")
        notes.append(f"only one arm has answers: arm B (challenger) answered no requests; {hint}")
    elif arms["A"]["answered"] == 0 and bounds["analysed"]:
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


def _float(value: Any) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def _iso(ts: Any) -> str | None:
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat()


def _describe(period: dict[str, Any]) -> str:
    models = f"champion v{period['champion'] or '?'} vs challenger v{period['challenger'] or '?'}"
    since = f"from {when(period['start'])} UTC"
    if period["mode"] == SHADOW:
        return f"{models} in shadow mode, {since}"
    return f"{models}, split {split_share(period['split_b'])} to B, {since}"
