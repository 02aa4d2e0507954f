"""`python analysis/analysis.py`: judge the A/B test from the router's logs and write the report.

    python analysis/analysis.py [--logs DIR] [--out DIR] [--since TS] [--promote] [--fixed-horizon] [--engine dask]

Reads the request log and the feedback log under the log root (through `ticket_ab.requestlog`,
which opens only the days from --since on and counts and skips torn rows), prints a console summary
and writes ab_report.png, ab_report.html and ab_summary.json.
With --promote, a `promote challenger` verdict moves the registry aliases (challenger -> champion,
old champion -> previous) and the report records why. The verdict's intervals are customer-level and
always valid, so this may run after every batch or from a scheduled job without raising the
false-promotion rate; --fixed-horizon uses classic intervals, for one look at a pre-registered size.
The accuracy difference is adjusted on the champion's confidence in each labelled ticket (CUPAC,
`analysis/covariate.py`): the champion version of the period is loaded from the registry and scores
the logged texts; if it cannot be, the comparison is unadjusted and a note says why (--no-cupac skips it).
Thresholds come from the settings (TICKET_AB_TEST_*); the flags below override four of them.
The raw log rows are typed in this process, or with --engine dask (TICKET_AB_TEST_PREPARE_ENGINE) one task per
day on a dask.distributed cluster (`analysis/scatter.py`): the same report, with a note saying so.
With labels from two or more feedback sources (the integration whose token sent each label), the
verdict is also worked out without each source's labels (`analysis/sources.py`): a promotion that
does not hold without one of them rests on that source, and --promote refuses it, naming it.

Exit codes:
  0  the report was written (whatever the verdict); with --promote, the promotion was done or not due
  2  nothing to analyse (no request log, an empty one, nothing after --since), a bad argument or
     setting, a dask scheduler that cannot be used, an unwritable --out, or --promote could not move
     the aliases (the report is still written)
  3  --promote refused: the verdict does not hold without one feedback source's labels (the
     message names it; the report is still written)
"""

from __future__ import annotations

import argparse
import getpass
import sys
import typing
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

if not __package__:
    # Run as `python analysis/analysis.py`: Python searches this folder first, where this very file
    # would stand in for the `analysis` package. Load the package from its own location instead.
    import importlib.util

    _spec = importlib.util.spec_from_file_location("analysis", Path(__file__).with_name("__init__.py"),
                                                   submodule_search_locations=[str(Path(__file__).parent)])
    sys.modules["analysis"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["analysis"])

import pandas as pd

from analysis import covariate, experiment, fmt, report, scatter
from analysis.verdict import PROMOTE
from ticket_ab import registry
from ticket_ab.logstore import FEEDBACK, REQUESTS, partitions
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.settings import ABSettings, PrepareEngine, SettingsError, get_settings

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_REFUSED = 3


class UsageError(ValueError):
    """A problem the user fixes (path, timestamp, registry); printed as one `error:` line."""


def _fraction(text: str, low_ok: bool = False) -> float:
    """A number between 0 and 1 (alpha; the minimum gain may be 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0.0 <= value if low_ok else 0.0 < value) or not value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be {'at least 0' if low_ok else 'above 0'} and below 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="analysis.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=Path, help="log root with requests/ and feedback/ (default: settings.logs_dir)")
    parser.add_argument("--feedback", type=Path, help="log root to read feedback/ from (default: --logs)")
    parser.add_argument("--out", type=Path, help="report directory (default: settings.reports_dir)")
    parser.add_argument("--since", help="only requests at or after this ISO timestamp (UTC if no zone)")
    parser.add_argument("--promote", action="store_true", help="on a 'promote challenger' verdict, move the aliases "
                        "(an authenticated registry needs an account with MANAGE on the model, e.g. the stack's "
                        "`promoter`, in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)")
    parser.add_argument("--tracking-uri", help="MLflow registry for --promote and for scoring the champion "
                        "(default: MLFLOW_TRACKING_URI)")
    parser.add_argument("--alpha", type=_fraction, help="false-promotion rate (default: TICKET_AB_TEST_ALPHA)")
    parser.add_argument("--min-labelled", type=_count,
                        help="labelled requests per arm before any decision (default: TICKET_AB_TEST_MIN_LABELLED)")
    parser.add_argument("--min-gain", type=lambda t: _fraction(t, low_ok=True),
                        help="promote only when the interval's lower end reaches this accuracy gain, as a "
                             "fraction (default: TICKET_AB_TEST_MIN_GAIN)")
    parser.add_argument("--horizon", type=_count, help="labelled requests (both arms) the test is planned for; "
                        "the always-valid interval is tightest there (default: TICKET_AB_TEST_HORIZON)")
    parser.add_argument("--no-cupac", action="store_true",
                        help="compare unadjusted accuracies (default: adjust on the champion's confidence in each "
                             "labelled ticket, scored from the registry; see analysis/covariate.py)")
    parser.add_argument("--in-memory", action="store_true",
                        help="read both logs into memory with the checked reader (every line's CRC verified) "
                             "instead of scanning the files where they lie (default; bounded memory, for windows "
                             "of millions of requests)")
    parser.add_argument("--engine", dest="prepare_engine", choices=typing.get_args(PrepareEngine),
                        help="where the log rows are typed: `duckdb` in this process, `dask` one task per day on a "
                             "dask.distributed cluster (TICKET_AB_TEST_DASK_SCHEDULER; the same report; default: "
                             "TICKET_AB_TEST_PREPARE_ENGINE)")
    parser.add_argument("--fixed-horizon", action="store_true",
                        help="classic fixed-horizon intervals, valid for ONE look at a pre-registered sample size "
                             "(default: always-valid intervals, safe to re-run after every batch)")
    args = parser.parse_args(argv)
    if args.prepare_engine and args.in_memory:
        parser.error("argument --engine: not with --in-memory (which reads both logs in this process)")
    if args.alpha is not None and args.alpha >= 0.5:
        parser.error(f"argument --alpha: {args.alpha} must be below 0.5 (each end of an interval is a bound at alpha)")
    return args


def thresholds(args: argparse.Namespace, ab: ABSettings) -> ABSettings:
    """The settings' thresholds with the flags that were given on top."""
    flags = ("alpha", "min_labelled", "min_gain", "horizon", "prepare_engine")
    given = {k: getattr(args, k) for k in flags if getattr(args, k) is not None}
    return ab.model_copy(update=given)


def parse_since(text: str | None) -> pd.Timestamp | None:
    """An ISO timestamp or date; naive ones are UTC, as every timestamp in the logs is."""
    if not text:
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is not a timestamp (example: 2026-11-24T10:00:00Z)") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def registry_scorer(tracking_uri: str, model_name: str) -> covariate.Scorer:
    """Score texts with a champion version from the registry (each version loaded once). A missing
    sqlite store is reported, not created: analysing logs must not leave an empty registry behind."""
    loaded: dict[str, object] = {}

    def score(version: str, texts: list[str]):
        if urlparse(tracking_uri).scheme == "sqlite" and not Path(tracking_uri.split(":///", 1)[-1]).exists():
            raise covariate.CovariateError(f"no model registry at {tracking_uri} to score champion v{version} with")
        try:
            if version not in loaded:
                registry.connect(tracking_uri)
                loaded[version] = registry.load_version(model_name, version)
            return covariate.confidence(loaded[version], texts)
        except (*registry.FAILURES, OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise covariate.CovariateError(f"champion v{version} of {model_name!r} could not be scored from "
                                           f"{tracking_uri}: {first}") from None

    return score


def load(logs: Path, feedback: Path, since: pd.Timestamp | None, th: ABSettings, sequential: bool = True,
         scorer: covariate.Scorer | None = None, in_memory: bool = False) -> experiment.Analysis:
    """Analyse both logs from `since` on; a missing request log is a UsageError with advice.

    Feedback is read from `since` on too: it is sent after the answer it is about. By default the log files
    are scanned where they lie (DuckDB, out of core); `in_memory` reads them into pandas first (the checked
    reader, every line's CRC verified), which holds the whole window in memory.
    """
    days = partitions(logs, REQUESTS)
    if not days:
        raise UsageError(f"no request log at {logs} (expected {REQUESTS}/date=YYYY-MM-DD/*.csv below it): the "
                         "router writes it once it has served requests; pass --logs DIR to read another one")
    span = f"(the log covers the days {days[0][0]} to {days[-1][0]})"
    try:
        if in_memory:
            result = _in_memory(logs, feedback, since, th, sequential, scorer, span)
        else:
            result = experiment.analyse_logs(logs, feedback, since, experiment.Options(th, sequential, scorer))
    except experiment.AnalysisError as exc:
        raise UsageError(f"{exc} {span}") from None
    result.summary["sources"] = {"request log": [str(f) for f in result.files.get(REQUESTS, [])],
                                 "feedback log": [str(f) for f in result.files.get(FEEDBACK, [])]}
    return result


def _in_memory(logs: Path, feedback: Path, since: pd.Timestamp | None, th: ABSettings, sequential: bool,
               scorer: covariate.Scorer | None, span: str) -> experiment.Analysis:
    """The in-memory path: both logs read into pandas by the checked reader, then the same analysis."""
    requests = read_requests(logs, since=since)
    if since is not None and requests.rows.empty:
        raise UsageError(f"no requests at or after --since {since.isoformat()} {span}")
    answers = read_feedback(feedback, since=since)
    result = experiment.analyse(requests.rows, answers.rows, malformed_requests=requests.malformed,
                                malformed_feedback=answers.malformed, since=since, thresholds=th,
                                sequential=sequential, scorer=scorer)
    result.files = {REQUESTS: requests.files, FEEDBACK: answers.files}
    return result


def promote_if_due(summary: dict, tracking_uri: str, model_name: str) -> dict:
    """Move the aliases when the verdict says so and the tested challenger is the registry's challenger."""
    if summary["verdict"]["action"] != PROMOTE:
        status = f"not promoted: the verdict is {summary['verdict']['text']}"
        return {"requested": True, "done": False, "status": status, "moves": []}
    deciding = (summary.get("label_sources") or {}).get("deciding")
    if deciding:
        status = (f"promotion refused: the verdict does not hold without feedback source "
                  f"{', '.join(repr(s) for s in deciding)}: {summary['label_sources']['statement']}")
        return {"requested": True, "done": False, "refused": True, "status": status, "moves": []}
    tested = summary["arms"]["B"]["versions"]
    try:
        client = registry.connect(tracking_uri)
        challenger = registry.version_for(client, model_name, registry.CHALLENGER)
        if challenger is None:
            raise registry.RegistryError(f"model {model_name!r} has no challenger alias any more (promoted already?)")
        if tested != [str(challenger.version)]:
            raise registry.RegistryError(
                f"the log tested challenger version(s) {', '.join(tested) or 'none'} but the registry's challenger "
                f"is v{challenger.version}; re-run the test against the current challenger")
        moves = registry.promote(client, model_name, who=f"{getpass.getuser()} via analysis.py",
                                 why=f"A/B test: {summary['verdict']['reason']}")
    except registry.FAILURES as exc:
        return {"requested": True, "done": False, "status": f"promotion failed: {exc}", "moves": []}
    return {"requested": True, "done": True, "status": f"promoted v{challenger.version} to champion",
            "moves": [str(m) for m in moves]}


def console(summary: dict, paths: report.ReportPaths) -> str:
    """The few lines a person reads in the terminal; the HTML has the rest."""
    s = summary
    c = s["comparison"]
    lines = [f"A/B analysis, {s['mode']} mode, {s['data']['requests_analysed']:,} requests analysed "
             f"({fmt.when(s['window']['analysed_from'])} to {fmt.when(s['window']['analysed_to'])} UTC)"]
    for arm in experiment.ARMS:
        a = s["arms"][arm]
        lines.append(f"  {fmt.arm_label(s, arm):<24} requests {a['requests']:>6,}  share {fmt.pct(a['share']):>6}"
                     f"  labelled {a['labelled']:>5,}  accuracy {fmt.pct(a['accuracy']):>6} "
                     f"[{fmt.interval(a['accuracy_ci'])}]  macro-F1 {fmt.pct(a['macro_f1'])}  "
                     f"p95 {fmt.ms(a['latency_ms']['p95'])}  fallbacks {a['fallbacks']}  errors {a['errors']}")
        lines.extend(_priority_line(a.get("priority")))
    srm = s["srm"]
    if srm["applicable"]:
        lines.append(f"  SRM: B {fmt.pct(srm['observed_share_b'])} of customers vs "
                     f"{fmt.pct(srm['expected_share_b'])} configured, {fmt.p_is(srm['p_value'])}"
                     f"{'  FLAGGED' if srm['flagged'] else ''}")
    ci = fmt.interval([c["ci_low"], c["ci_high"]], fmt.pts)
    lines.append(f"  B - A accuracy: {fmt.pts(c['diff'])}, {c['interval']}: {ci}")
    lines.append(f"  estimand: {c['estimand']['statement']}")
    if (c.get("adjustment") or {}).get("applied"):
        lines.append(f"  CUPAC/CUPED: {c['adjustment'].get('statement', 'adjusted')}, variance "
                     f"-{fmt.pct(c['adjustment']['variance_reduction'])} (unadjusted B - A "
                     f"{fmt.pts(c['adjustment']['unadjusted_diff'])})")
    lines.append(f"  evidence: {c['evidence']['statement']}")
    lines.extend(f"  guardrail {g['status']}: {g['text']}" for g in s["guardrails"])
    lines.extend(_source_lines(s.get("label_sources")))
    lines.extend(f"  note: {n}" for n in s["notes"])
    lines.append(f"VERDICT: {s['verdict']['text']}: {s['verdict']['reason']}")
    if s.get("promotion"):
        lines.append(f"registry: {s['promotion']['status']}")
        lines.extend(f"alias moved: {m}" for m in s["promotion"]["moves"])
    lines += [f"figure: {paths.png}", f"report: {paths.html}", f"summary: {paths.json}"]
    return "\n".join(lines)


def _priority_line(p: dict | None) -> list[str]:
    """An arm's priority figures (`analysis.priority`), under its line; none in a summary from before them."""
    if not p:
        return []
    if p["status"] != "measured":
        return [f"  {'':<24} priority {p['text']}"]
    unscored = f"  ({p['unscored']:,} answered without a priority head, left out)" if p.get("unscored") else ""
    return [f"  {'':<24} priority labelled {p['labelled']:>5,}  accuracy {fmt.pct(p['accuracy']):>6} "
            f"[{fmt.interval(p['accuracy_ci'])}]  urgent missed {p['urgent_missed']:,} of {p['urgent']:,} "
            f"({fmt.pct(p['urgent_missed_rate'])}){unscored}"]


def _source_lines(label_sources: dict | None) -> list[str]:
    """Each feedback source's share of the labels per arm, its leave-out verdict, and what the verdict rests on."""
    if not label_sources or not label_sources["sources"]:
        return []
    lines = []
    for r in label_sources["sources"]:
        arms = ", ".join(f"{arm} {fmt.pct(r['per_arm'][arm]['share'])}" for arm in experiment.ARMS)
        without = r["without"]
        left_out = (f"; without it: {without['text']}, B - A {fmt.pts(without['diff'])}" if without else "")
        lines.append(f"  labels from '{r['source']}': {r['labels']:,} ({fmt.pct(r['share'])}; {arms}){left_out}"
                     + ("  DECIDES" if r["decides"] else ""))
    return lines + [f"  sources: {label_sources['statement']}"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = get_settings()
        logs = args.logs or settings.logs_dir
        tracking_uri = args.tracking_uri or settings.tracking_uri
        scorer = None if args.no_cupac else registry_scorer(tracking_uri, settings.model_name)
        result = load(logs, args.feedback or logs, parse_since(args.since), thresholds(args, settings.ab),
                      sequential=not args.fixed_horizon, scorer=scorer, in_memory=args.in_memory)
    except (UsageError, SettingsError, scatter.ClusterError) as exc:  # a ClusterError, not a UsageError: the DAG
        # takes a UsageError for "no data yet", and a cluster that is down must fail its look, not skip it
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    result.summary["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    if args.promote:
        result.summary["promotion"] = promote_if_due(result.summary, tracking_uri, settings.model_name)
    out = args.out or settings.reports_dir
    try:
        paths = report.write_report(result, out)
    except OSError as exc:
        print(f"error: cannot write the report to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(console(result.summary, paths))
    promotion = result.summary.get("promotion")
    if promotion and promotion.get("refused"):
        print(f"error: {promotion['status']}", file=sys.stderr)
        return EXIT_REFUSED
    if promotion and promotion["status"].startswith("promotion failed"):
        print(f"error: {promotion['status']}", file=sys.stderr)
        return EXIT_USER_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
