"""One look of the experiment DAG: read the experiment, analyse it as analysis.py does, decide, act, record, tell.

    registry aliases + the router's config -> rollout.Experiment
    the experiment's window -> analysis (as `analysis.py`) -> rollout.Look   (or, after a promotion, a Watch)
    rollout.decide / rollout.watch -> at most one action -> router config path + registry adapter
    -> audit record on the version, an MLflow run with the A/B report, one chat alert

Every action is safe to retry. The decision is a function of what is set now, so a retry after a
success sees the new state and holds. Actions of more than one step (promote, stop, rollback) are
journalled on the version first (`rollout.decision`); a look that finds an unfinished journal
finishes it, so a crash halfway ends where a first success would have. The split goes through the
router's `POST /config` with the ETag the decision was made on; aliases move only through
`ticket_ab.registry`. `ask` mode journals the action as pending (`rollout.pending`), alerts once,
and waits for `ticket-ab rollout approve`, which runs this look again and acts if it decides the same.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import fmt, report, rollout, routerconfig
from analysis.analysis import UsageError, load, registry_scorer
from analysis.experiment import Analysis
from analysis.rollout import ASK, HOLD, OFF, PROMOTE, RAMP, ROLLBACK, STOP, Decision, Experiment
from analysis.watch import compare_champions
from ticket_ab import alerts, registry
from ticket_ab.log import get_logger, kv
from ticket_ab.names import CHALLENGER, CHAMPION, PREVIOUS, ROLLOUT_START, SHADOW, SPLIT
from ticket_ab.settings import Settings
from ticket_ab.strict_json import jsonable

JOURNAL_TAG = "rollout.decision"  # an action of several steps, decided and not yet finished
PENDING_TAG = "rollout.pending"  # ask mode: the action waiting for `ticket-ab rollout approve`
OUTCOME_TAG = "rollout.outcome"  # the last action finished on the version
AUDIT_PREFIX = "rollout.audit."  # one tag per action: who, why, the figures

log = get_logger("analysis.autopilot")


@dataclass
class Outcome:
    """What one look decided and did: the DAG run's return value and the CLI's summary."""

    action: str
    reason: str
    mode: str
    done: bool
    status: str
    champion: str | None
    challenger: str | None
    figures: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    report: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class State:
    """The registry's versions, the router's config and the experiment they make."""

    champion: Any
    challenger: Any
    previous: Any
    served: routerconfig.Served
    experiment: Experiment


def router_url(settings: Settings) -> str:
    return settings.rollout.router_url or f"http://{settings.router.host}:{settings.router.port}"


def run_once(settings: Settings, *, who: str = "autopilot", approve: bool = False,
             now: datetime | None = None) -> Outcome:
    """Look once, take at most one action, and say what was decided and done."""
    client = registry.connect(settings.tracking_uri)
    state = read_state(settings, client, now or datetime.now(UTC))
    analysis, decision = look(settings, state)
    subject = _subject_version(state, decision)
    outcome = Outcome(decision.action, decision.reason, decision.mode, False, "", _v(state.champion),
                      _v(state.challenger), decision.figures)
    if decision.action == HOLD:
        outcome.status = "held"
    elif decision.mode == OFF:
        outcome.status = f"would {decision.action}, but TICKET_AB_ROLLOUT_{decision.action.upper()} is off"
    elif decision.mode == ASK and not (approve and _pending(subject) == decision.action):
        outcome.status = _ask(settings, client, state, decision, who)
    else:
        _carry_out(settings, client, state, analysis, decision, who, outcome)
    log.info(kv("rollout_look", action=decision.action, mode=decision.mode, done=outcome.done,
                champion=outcome.champion, challenger=outcome.challenger, status=outcome.status))
    return outcome


def read_state(settings: Settings, client: Any, now: datetime) -> State:
    """The aliases' versions, the split the router serves, and the experiment they describe."""
    name = settings.model_name
    champion, challenger, previous = (registry.version_for(client, name, a) for a in (CHAMPION, CHALLENGER, PREVIOUS))
    served = routerconfig.read(router_url(settings))
    started = registry.created_at(challenger) if challenger is not None else None
    named = challenger is not None and served.challenger == challenger.version
    step_since = started
    if named and served.updated_at and served.updated_by != ROLLOUT_START:
        step_since = datetime.fromisoformat(served.updated_at)
    subject = challenger if challenger is not None else champion
    experiment = Experiment(
        now=now, champion=_v(champion), challenger=_v(challenger), split=served.split, mode=served.mode,
        started=started, step_since=step_since,
        journalled=(subject.tags.get(JOURNAL_TAG) if subject is not None else None),
        promoted_at=registry.alias_moved_at(champion, CHAMPION) if champion is not None else None,
        previous=_v(previous), champion_journalled=(champion.tags.get(JOURNAL_TAG) if champion is not None else None))
    return State(champion, challenger, previous, served, experiment)


def look(settings: Settings, state: State) -> tuple[Analysis | None, Decision]:
    """Analyse the experiment's window (the whole analysis.py report) and apply the policy to it."""
    exp, policy = state.experiment, settings.rollout
    if state.challenger is None:
        return _look_at_champion(settings, state)
    if rollout.watching(exp, policy):  # a champion still watched comes first: its rollback outranks a ramp
        watched = _look_at_champion(settings, state)
        if watched[1].action == ROLLBACK:
            return watched
    if state.served.challenger != exp.challenger:
        return None, Decision(HOLD, f"the router does not serve challenger v{exp.challenger} yet "
                                    f"(it serves {state.served.challenger or 'none'})")
    earlier = timedelta(days=settings.ab.prior_days)  # each customer's earlier accuracy (CUPED) is read too
    analysis = _analyse(settings, exp.started - earlier if exp.started else None)
    seen = rollout.look_from_summary(analysis.summary) if analysis is not None else None
    return analysis, rollout.decide(exp, seen, policy)


def _look_at_champion(settings: Settings, state: State) -> tuple[Analysis | None, Decision]:
    """The watch: the champion's live accuracy since its promotion against its predecessor's."""
    exp, policy = state.experiment, settings.rollout
    if state.champion is None or exp.promoted_at is None:
        return None, rollout.watch(exp, None, policy)
    analysis = _analyse(settings, registry.created_at(state.champion))
    seen = _watch(analysis, exp.champion, exp.previous, settings) if analysis is not None else None
    return analysis, rollout.watch(exp, seen, policy)


def _analyse(settings: Settings, since: datetime | None) -> Analysis | None:
    """analysis.py's own load: both logs from `since`, CUPAC on, the sources' veto; None without requests."""
    logs = settings.logs_dir
    try:
        return load(logs, logs, pd.Timestamp(since) if since else None, settings.ab, sequential=True,
                    scorer=registry_scorer(settings.tracking_uri, settings.model_name))
    except UsageError as exc:
        log.info(kv("rollout_no_data", reason=exc))
        return None


def _watch(analysis: Analysis, new: str | None, old: str | None, settings: Settings) -> rollout.Watch | None:
    """The new champion's labelled answers since its promotion against its predecessor's (arm A) before."""
    rows = analysis.champion_answers
    served = rows[rows["version"].isin([new, old])]
    outcomes = pd.DataFrame({"unit": served["unit"], "right": served["right"], "after": served["version"] == new})
    if outcomes["after"].all() or not outcomes["after"].any():
        return None
    return compare_champions(outcomes, settings.ab)


def _carry_out(settings: Settings, client: Any, state: State, analysis: Analysis | None, decision: Decision,
               who: str, outcome: Outcome) -> None:
    """Journal, report, act, record, alert: in that order, so a retry finishes what a crash interrupted."""
    name, subject = settings.model_name, _subject(state, decision)
    if decision.action in (PROMOTE, STOP, ROLLBACK):
        registry.tag_version(client, name, subject, {JOURNAL_TAG: decision.action})
    outcome.run_id, outcome.report = _record(settings, state, analysis, decision, who)
    if decision.action == RAMP:
        changes = {"ab_split_b": decision.target_split, "challenger": subject, "updated_by": "autopilot"}
        routerconfig.write(router_url(settings), settings.router.admin_token, state.served,
                           changes | ({"mode": SPLIT} if state.served.mode == SHADOW else {}))
    elif decision.action in (PROMOTE, STOP):
        if state.served.split or state.served.mode != SPLIT:
            routerconfig.write(router_url(settings), settings.router.admin_token, state.served,
                               {"ab_split_b": 0.0, "mode": SPLIT, "challenger": subject, "updated_by": "autopilot"})
        move = registry.promote if decision.action == PROMOTE else registry.withdraw
        move(client, name, why=f"experiment DAG: {decision.reason}", who=who)
    elif decision.action == ROLLBACK:
        registry.rollback(client, name, why=f"experiment DAG: {decision.reason}", who=who)
    registry.tag_version(client, name, subject, {JOURNAL_TAG: "", PENDING_TAG: "", OUTCOME_TAG: decision.action,
                                                 _audit_key(): _audit(decision, who, outcome.run_id)})
    outcome.done, outcome.status = True, _done(decision, subject)
    _alert(settings, state, decision, outcome)


def _record(settings: Settings, state: State, analysis: Analysis | None, decision: Decision,
            who: str) -> tuple[str | None, str | None]:
    """The A/B report (HTML, PNG, JSON) in an MLflow run tagged with both versions; the run id and the HTML."""
    versions = {"champion_version": _v(state.champion) or "", "challenger_version": _v(state.challenger) or "",
                "previous_version": _v(state.previous) or ""}
    artifacts, html = [], None
    if analysis is not None:
        stamp = state.experiment.now.strftime("%Y%m%dT%H%M%SZ")
        out = settings.reports_dir / "rollout" / f"{settings.model_name}-v{_subject(state, decision)}" / \
            f"{stamp}-{decision.action}"
        analysis.summary["rollout"] = {"action": decision.action, "reason": decision.reason, "who": who}
        paths = report.write_report(analysis, out)
        artifacts = [registry.Artifact(Path(p), "ab_report") for p in (paths.html, paths.png, paths.json)]
        html = str(paths.html)
    metrics = {k: float(v) for k, v in decision.figures.items() if isinstance(v, int | float) and v == v}
    run_id, _ = registry.log_run(settings, f"rollout-{decision.action}-v{_subject(state, decision)}",
                                 tags={"kind": "rollout", "rollout.action": decision.action,
                                       "rollout.reason": decision.reason[:4000], "rollout.who": who, **versions},
                                 metrics=metrics, artifacts=artifacts)
    return run_id, html


def _ask(settings: Settings, client: Any, state: State, decision: Decision, who: str) -> str:
    """Journal the action as pending and alert once; the operator's `ticket-ab rollout approve` takes it."""
    subject = _subject(state, decision)
    status = f"waiting for approval of {decision.action}: run `ticket-ab rollout approve`"
    if _pending(_subject_version(state, decision)) != decision.action:
        record = json.dumps({"action": decision.action, "reason": decision.reason, "who": who,
                             "at": state.experiment.now.isoformat(timespec="seconds")})
        registry.tag_version(client, settings.model_name, subject, {PENDING_TAG: record})
        alerts.send(alerts.Alert(alerts.PENDING, f"{settings.model_name} v{subject}: {decision.action} awaits "
                                 "approval", {**_alert_figures(decision), "approve with": "ticket-ab rollout approve"},
                                 model=settings.model_name, version=subject), settings.alert,
                    base_link=_link(settings, subject))
    return status


def _alert(settings: Settings, state: State, decision: Decision, outcome: Outcome) -> None:
    subject = _subject(state, decision)
    reason = decision.reason.lower()
    event = {RAMP: alerts.RAMPED, PROMOTE: alerts.PROMOTED, ROLLBACK: alerts.ROLLED_BACK}.get(decision.action)
    if event is None:
        event = (alerts.SRM if "sample-ratio" in reason else alerts.GUARDRAIL if "guardrail" in reason
                 else alerts.STOPPED)
    title = {RAMP: f"v{subject} ramped to {fmt.split_share(decision.target_split)} of customers",
             PROMOTE: f"v{subject} promoted to champion",
             STOP: f"experiment of v{subject} stopped: champion v{outcome.champion} kept",
             ROLLBACK: f"v{subject} rolled back: v{state.experiment.previous} is champion again"}[decision.action]
    alerts.send(alerts.Alert(event, f"{settings.model_name}: {title}", _alert_figures(decision),
                             model=settings.model_name, version=subject), settings.alert,
                base_link=_link(settings, subject))


def _alert_figures(decision: Decision) -> dict[str, str]:
    f = decision.figures
    figures = {"why": decision.reason[:200]}
    if "diff" in f:
        figures["B - A"] = f"{fmt.pts(f['diff'])} [{fmt.interval([f['ci_low'], f['ci_high']], fmt.pts)}]"
    if f.get("labelled"):
        figures["labelled"] = fmt.num(f["labelled"])
    return figures


def _link(settings: Settings, version: str | None) -> str:
    base = settings.alert.link or (settings.tracking_uri if settings.tracking_uri.startswith("http") else "")
    return f"{base.rstrip('/')}/#/models/{settings.model_name}/versions/{version}" if base and version else base


def _subject_version(state: State, decision: Decision) -> Any:
    """The version an action is about: the challenger, or the watched champion for a rollback."""
    return state.champion if decision.action == ROLLBACK or state.challenger is None else state.challenger


def _subject(state: State, decision: Decision) -> str | None:
    return _v(_subject_version(state, decision))


def _pending(version: Any) -> str | None:
    if version is None or PENDING_TAG not in version.tags:
        return None
    try:
        return json.loads(version.tags[PENDING_TAG]).get("action")
    except ValueError:
        return None


def _audit_key() -> str:
    return f"{AUDIT_PREFIX}{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


def _audit(decision: Decision, who: str, run_id: str | None) -> str:
    figures = {k: v for k, v in decision.figures.items() if isinstance(v, int | float | str)}
    return json.dumps(jsonable({"action": decision.action, "who": who, "why": decision.reason[:1500],
                                       "figures": figures, "run_id": run_id}))[:4900]


def _done(decision: Decision, subject: str | None) -> str:
    return {RAMP: f"ramped v{subject} to {fmt.split_share(decision.target_split)}", PROMOTE: f"promoted v{subject}",
            STOP: f"stopped the experiment of v{subject}", ROLLBACK: f"rolled v{subject} back"}[decision.action]


def _v(version: Any) -> str | None:
    return str(version.version) if version is not None else None
