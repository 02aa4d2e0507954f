"""analysis.autopilot with its adapters replaced by fakes: what one look does in each mode, and in what order.

The real registry, router and DAG are exercised in tests/integration/dag/test_autopilot_loop.py; here
the point is the shell's own rules (ask waits and alerts once, off changes nothing, a promotion is
journalled before anything moves) without processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from analysis import autopilot, report, routerconfig
from analysis.rollout import HOLD, PROMOTE, RAMP, ROLLBACK, Watch
from ticket_ab import alerts, registry
from ticket_ab.names import CHALLENGER, CHAMPION, PREVIOUS

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@dataclass
class Fakes:
    versions: dict[str, SimpleNamespace]
    aliases: dict[str, str]
    served: routerconfig.Served
    calls: list[str] = field(default_factory=list)
    sent: list[alerts.Alert] = field(default_factory=list)
    written: list[dict] = field(default_factory=list)


def version(number: str, hours_old: float) -> SimpleNamespace:
    created = int((NOW - timedelta(hours=hours_old)).timestamp() * 1000)
    return SimpleNamespace(version=number, tags={}, creation_timestamp=created)


def summary(verdict: str, low: float, high: float, customers: int = 50) -> dict:
    return {"comparison": {"diff": (low + high) / 2, "ci_low": low, "ci_high": high, "n_a": 400, "n_b": 400},
            "verdict": {"action": verdict, "reason": f"the test says {verdict}"}, "srm": {"flagged": False},
            "guardrails": [], "step": {"labelled_customers": {"A": customers, "B": customers}}}


@pytest.fixture
def fakes(monkeypatch) -> Fakes:
    f = Fakes(versions={"1": version("1", 200), "2": version("2", 5)}, aliases={CHAMPION: "1", CHALLENGER: "2"},
              served=routerconfig.Served(0.05, "split", "2", None, "rollout policy", '"3"'))

    def version_for(_client, _name, alias):
        return f.versions.get(f.aliases.get(alias, ""))

    def tag_version(_client, _name, number, tags):
        f.calls.append(f"tag {sorted(tags)}")
        for key, value in tags.items():
            if value:
                f.versions[number].tags[key] = value
            else:
                f.versions[number].tags.pop(key, None)

    def promote(_client, _name, *, why, who):
        f.calls.append("promote")
        f.aliases.update({PREVIOUS: f.aliases[CHAMPION], CHAMPION: f.aliases.pop(CHALLENGER)})

    def write(_url, _token, served, changes):
        f.calls.append("config")
        f.written.append({"if_match": served.etag, **changes})
        return served

    monkeypatch.setattr(registry, "connect", lambda _uri: object())
    monkeypatch.setattr(registry, "version_for", version_for)
    monkeypatch.setattr(registry, "tag_version", tag_version)
    monkeypatch.setattr(registry, "promote", promote)
    monkeypatch.setattr(registry, "log_run", lambda *a, **k: (f.calls.append("run") or "run-1", None))
    monkeypatch.setattr(routerconfig, "read", lambda _url: f.served)
    monkeypatch.setattr(routerconfig, "write", write)
    monkeypatch.setattr(alerts, "send", lambda alert, *_a, **_k: f.sent.append(alert) or True)
    return f


def at_last_step(f: Fakes) -> None:
    """The router serves the challenger at the last ramp step, where a promote verdict promotes."""
    f.served = routerconfig.Served(0.5, "split", "2", (NOW - timedelta(hours=2)).isoformat(), "autopilot", '"3"')


def analysed(monkeypatch, verdict: str, low: float, high: float) -> None:
    """The look's analysis, and a report writer that only touches the three files it would write."""
    result = SimpleNamespace(summary=summary(verdict, low, high))
    monkeypatch.setattr(autopilot, "_analyse", lambda _settings, _since: result)

    def write_report(_analysis, out):
        out.mkdir(parents=True, exist_ok=True)
        paths = report.ReportPaths(out / report.PNG, out / report.HTML, out / report.JSON)
        for path in (paths.png, paths.html, paths.json):
            path.write_text("x")
        return paths

    monkeypatch.setattr(report, "write_report", write_report)


@pytest.fixture
def settings(make_settings):
    return make_settings(router={"admin_token": "admin"}, rollout={"min_step_minutes": 0.0, "min_customers": 10})


def test_a_non_inferior_step_ramps_through_post_config_with_the_etag_it_decided_on(fakes, monkeypatch, settings):
    analysed(monkeypatch, "keep collecting", -0.01, 0.12)
    outcome = autopilot.run_once(settings, now=NOW)
    assert (outcome.action, outcome.done, outcome.status) == (RAMP, True, "ramped v2 to 25%")
    assert fakes.written == [{"if_match": '"3"', "ab_split_b": 0.25, "challenger": "2", "updated_by": "autopilot"}]
    assert [a.event for a in fakes.sent] == [alerts.RAMPED]
    audit = [json.loads(v) for k, v in fakes.versions["2"].tags.items() if k.startswith(autopilot.AUDIT_PREFIX)]
    assert audit[0]["action"] == RAMP and audit[0]["who"] == "autopilot" and audit[0]["run_id"] == "run-1"


def test_a_promotion_at_the_last_step_is_journalled_before_the_split_and_the_aliases_move(fakes, monkeypatch, settings):
    at_last_step(fakes)
    analysed(monkeypatch, "promote challenger", 0.03, 0.12)
    outcome = autopilot.run_once(settings, now=NOW)
    assert outcome.action == PROMOTE and outcome.done
    assert fakes.calls[0] == f"tag ['{autopilot.JOURNAL_TAG}']" and fakes.calls.index("config") < fakes.calls.index(
        "promote")
    assert fakes.aliases == {CHAMPION: "2", PREVIOUS: "1"}
    tags = fakes.versions["2"].tags
    assert tags[autopilot.OUTCOME_TAG] == PROMOTE and autopilot.JOURNAL_TAG not in tags
    assert [a.event for a in fakes.sent] == [alerts.PROMOTED]


def test_ask_mode_records_the_action_as_pending_alerts_once_and_approve_takes_it(fakes, monkeypatch, make_settings):
    settings = make_settings(router={"admin_token": "admin"}, rollout={"min_step_minutes": 0.0, "promote": "ask"})
    at_last_step(fakes)
    analysed(monkeypatch, "promote challenger", 0.03, 0.12)
    first, second = (autopilot.run_once(settings, now=NOW) for _ in range(2))
    assert not first.done and not second.done and "ticket-ab rollout approve" in first.status
    assert [a.event for a in fakes.sent] == [alerts.PENDING], "one alert for one pending decision"
    assert json.loads(fakes.versions["2"].tags[autopilot.PENDING_TAG])["action"] == PROMOTE
    assert fakes.aliases[CHAMPION] == "1"
    approved = autopilot.run_once(settings, approve=True, now=NOW)
    assert approved.done and fakes.aliases[CHAMPION] == "2"
    assert autopilot.PENDING_TAG not in fakes.versions["2"].tags


def test_a_watched_champion_worse_than_its_predecessor_is_rolled_back_before_the_new_challenger_ramps(
        fakes, monkeypatch, settings):
    fakes.versions["0"] = version("0", 400)
    fakes.aliases[PREVIOUS] = "0"  # v1 was promoted over v0 five hours ago; challenger v2 is at its first step
    monkeypatch.setattr(registry, "alias_moved_at", lambda _version, _alias: NOW - timedelta(hours=5))
    monkeypatch.setattr(registry, "rollback", lambda *_a, **_k: fakes.calls.append("rollback"))
    monkeypatch.setattr(autopilot, "_watch", lambda *_a: Watch(-0.10, -0.15, -0.05, 1200))
    analysed(monkeypatch, "collect", -0.01, 0.12)  # on its own, the challenger's step would ramp
    outcome = autopilot.run_once(settings, now=NOW)
    assert (outcome.action, outcome.done) == (ROLLBACK, True) and "rollback" in fakes.calls
    assert "config" not in fakes.calls  # the challenger's split is left as it was
    assert fakes.versions["1"].tags[autopilot.OUTCOME_TAG] == ROLLBACK  # the audit is on the rolled-back champion
    monkeypatch.setattr(autopilot, "_watch", lambda *_a: Watch(0.01, -0.03, 0.05, 1200))
    assert autopilot.run_once(settings, now=NOW).action == RAMP  # a champion that holds up: the experiment goes on


def test_off_mode_reports_what_it_would_do_and_changes_nothing(fakes, monkeypatch, make_settings):
    settings = make_settings(rollout={"min_step_minutes": 0.0, "promote": "off"})
    at_last_step(fakes)
    analysed(monkeypatch, "promote challenger", 0.03, 0.12)
    outcome = autopilot.run_once(settings, now=NOW)
    assert not outcome.done and outcome.status.startswith("would promote")
    assert fakes.calls == [] and fakes.sent == [] and fakes.aliases[CHAMPION] == "1"


def test_a_challenger_the_router_does_not_serve_yet_is_not_judged(fakes, monkeypatch, settings):
    fakes.served = routerconfig.Served(0.5, "split", "1", None, "api", '"2"')
    monkeypatch.setattr(autopilot, "_analyse", lambda *_: pytest.fail("no analysis before the router serves it"))
    outcome = autopilot.run_once(settings, now=NOW)
    assert outcome.action == HOLD and "does not serve challenger v2 yet" in outcome.reason


def test_the_step_starts_when_the_split_was_set_for_this_challenger(fakes, settings):
    fakes.served = routerconfig.Served(0.25, "split", "2", (NOW - timedelta(minutes=3)).isoformat(), "autopilot", "*")
    state = autopilot.read_state(settings, object(), NOW)
    assert state.experiment.step_since == NOW - timedelta(minutes=3)
    assert state.experiment.started == NOW - timedelta(hours=5)
