"""The experiment policy (`analysis.rollout`), rule by rule in the order its docstring numbers them, then
the watch after a promotion (fed by `analysis.watch.compare_champions`) and the action modes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analysis import rollout
from analysis.rollout import (
    ASK,
    AUTO,
    HOLD,
    OFF,
    PROMOTE,
    RAMP,
    ROLLBACK,
    STOP,
    Experiment,
    Look,
    Watch,
    decide,
    look_from_summary,
    next_step,
    watch,
    watching,
)
from analysis.verdict import COLLECT, GUARDRAIL, KEEP
from analysis.verdict import PROMOTE as PROMOTE_VERDICT
from analysis.watch import compare_champions
from ticket_ab.names import SHADOW, SPLIT
from ticket_ab.settings import ABSettings, RolloutSettings

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = RolloutSettings()  # steps 5%, 25%, 50%; 30 customers; 60 min; 2 pt; 168 h; watch 72 h; all auto
TH = ABSettings()


def hours_ago(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


def running(**changes) -> Experiment:
    """A challenger at the first step for 3 hours, its experiment 10 hours old."""
    base = {"now": NOW, "champion": "1", "challenger": "2", "split": 0.05, "mode": SPLIT,
            "started": hours_ago(10), "step_since": hours_ago(3)}
    return Experiment(**{**base, **changes})


def seen(**changes) -> Look:
    """Still collecting, shown at most 1 point worse, with 40 labelled customers per arm in the step."""
    base = {"verdict": COLLECT, "reason": "not decided yet", "diff": 0.03, "ci_low": -0.01, "ci_high": 0.07,
            "labelled_customers": {"A": 400, "B": 40}, "labelled": 900}
    return Look(**{**base, **changes})


TOP = POLICY.ramp_steps[-1]  # the last step, where a promotion happens


def promotable(**changes) -> Look:
    return seen(verdict=PROMOTE_VERDICT, reason="the challenger is more accurate by at least 1.0 pts",
                diff=0.08, ci_low=0.03, ci_high=0.13, **changes)


def watched(**changes) -> Experiment:
    """Champion v2, promoted from v1 ten hours ago, no challenger."""
    base = {"now": NOW, "champion": "2", "challenger": None, "promoted_at": hours_ago(10), "previous": "1"}
    return Experiment(**{**base, **changes})


def test_without_a_challenger_there_is_nothing_to_decide():
    assert decide(running(challenger=None), promotable(), POLICY).action == HOLD


# 1. a journalled decision is finished first


@pytest.mark.parametrize("journalled", [PROMOTE, STOP])
def test_a_journalled_decision_is_finished_before_anything_else(journalled):
    broken = seen(verdict=KEEP, srm_flagged=True, breached=("p95 latency",))
    for look in (broken, promotable(), None):
        decision = decide(running(journalled=journalled, step_since=hours_ago(0.1)), look, POLICY)
        assert decision.action == journalled and decision.acts
        assert f"finishing the {journalled}" in decision.reason


def test_a_journalled_decision_is_finished_whatever_the_modes_say_now():
    # it was decided (and approved, if asked) before the crash: only finishing it is left
    policy = RolloutSettings(promote=OFF, stop=ASK)
    for journalled in (PROMOTE, STOP):
        decision = decide(running(journalled=journalled), None, policy)
        assert (decision.action, decision.mode, decision.acts) == (journalled, AUTO, True)


def test_an_unknown_journal_entry_is_not_acted_on():
    assert decide(running(journalled="ramp"), seen(), POLICY).action == RAMP


# 2. sample-ratio mismatch or a breached guardrail: stop


def test_a_sample_ratio_mismatch_stops_even_a_clear_winner():
    decision = decide(running(), promotable(srm_flagged=True), POLICY)
    assert decision.action == STOP and "sample-ratio mismatch" in decision.reason


def test_a_breached_guardrail_stops_and_is_named():
    decision = decide(running(), promotable(breached=("p95 latency", "error rate")), POLICY)
    assert decision.action == STOP
    assert decision.reason == "guardrail breached: p95 latency, error rate"


def test_the_guardrail_verdict_stops_with_its_own_reason_when_no_name_is_given():
    decision = decide(running(), seen(verdict=GUARDRAIL, reason="keep champion: p99 latency beyond"), POLICY)
    assert decision.action == STOP and decision.reason.endswith("keep champion: p99 latency beyond")


def test_srm_and_guardrails_stop_even_a_young_step():
    assert decide(running(step_since=NOW), seen(srm_flagged=True), POLICY).action == STOP
    assert decide(running(step_since=NOW), seen(breached=("error rate",)), POLICY).action == STOP


# 3. the verdict "keep champion": stop


def test_keep_champion_stops_with_the_verdicts_reason_at_any_step_age():
    look = seen(verdict=KEEP, reason="the challenger is less accurate: B - A = -8.0 pts", ci_high=-0.03)
    for since in (NOW, hours_ago(5)):
        decision = decide(running(step_since=since), look, POLICY)
        assert decision.action == STOP and decision.reason == look.reason
        assert decision.figures["ci_high"] == -0.03


# 4. past the maximum duration: stop (inconclusive, the champion stays)


def test_an_undecided_experiment_stops_at_the_maximum_duration():
    decision = decide(running(started=hours_ago(POLICY.max_hours)), seen(), POLICY)
    assert decision.action == STOP
    assert decision.reason.startswith("no decision after 168.0 h") and "keeping the champion" in decision.reason


def test_just_before_the_maximum_duration_the_rule_carries_on():
    decision = decide(running(started=hours_ago(POLICY.max_hours - 0.01)), seen(), POLICY)
    assert decision.action == RAMP


def test_the_maximum_duration_applies_without_any_data_too():
    assert decide(running(started=hours_ago(200)), None, POLICY).action == STOP


# 5. a step younger than its minimum time: hold


def test_a_young_step_holds_even_a_promotion():
    decision = decide(running(step_since=hours_ago(0.5)), promotable(), POLICY)
    assert decision.action == HOLD and "younger than 60 min" in decision.reason and "5%" in decision.reason
    assert decision.figures["verdict"] == PROMOTE_VERDICT  # the look is still reported


def test_a_step_exactly_its_minimum_age_may_act():
    assert decide(running(step_since=hours_ago(1), split=TOP), promotable(), POLICY).action == PROMOTE


def test_no_analysable_data_holds():
    decision = decide(running(), None, POLICY)
    assert decision.action == HOLD and decision.reason == "no analysable data yet" and decision.figures == {}


# 6. "promote challenger" with no single feedback source deciding it: promote


def test_the_promote_verdict_promotes_at_the_last_step():
    decision = decide(running(split=POLICY.ramp_steps[-1]), promotable(), POLICY)
    assert decision.action == PROMOTE and decision.mode == AUTO and decision.acts
    assert decision.reason.startswith("the challenger is more accurate")
    assert decision.figures["diff"] == 0.08 and decision.figures["labelled"] == 900


def test_the_promote_verdict_at_an_earlier_step_ramps_first_whatever_its_customers():
    for split, target in zip(POLICY.ramp_steps, POLICY.ramp_steps[1:], strict=False):
        decision = decide(running(split=split), promotable(labelled_customers={"A": 1, "B": 1}), POLICY)
        assert (decision.action, decision.target_split) == (RAMP, target)
        assert "the gain is established" in decision.reason


def test_a_gain_that_one_feedback_source_decides_is_held_not_promoted():
    decision = decide(running(), promotable(deciding_sources=("agent_label",)), POLICY)
    assert decision.action == HOLD and not decision.acts
    assert "feedback source agent_label" in decision.reason and "not promoted" in decision.reason


def test_a_source_veto_does_not_ramp_either():
    # the veto holds: the ramp rule is for undecided experiments, not for held promotions
    assert decide(running(split=0.05), promotable(deciding_sources=("relabel",)), POLICY).action == HOLD


# 7. ramp: enough labelled customers per arm in the step, non-inferiority shown, a next step


@pytest.mark.parametrize(("split", "target"), [(0.05, 0.25), (0.25, 0.5)])
def test_a_non_inferior_step_with_its_customers_ramps_to_the_next_step(split, target):
    decision = decide(running(split=split), seen(), POLICY)
    assert decision.action == RAMP and decision.target_split == target and decision.acts
    assert "shown at most 2.0 pts worse" in decision.reason and "40+ labelled customers per arm" in decision.reason


def test_a_ramp_needs_the_minimum_labelled_customers_in_the_smaller_arm():
    at_minimum = seen(labelled_customers={"A": 400, "B": POLICY.min_customers})
    assert decide(running(), at_minimum, POLICY).action == RAMP
    short = seen(labelled_customers={"A": 400, "B": POLICY.min_customers - 1})
    decision = decide(running(), short, POLICY)
    assert decision.action == HOLD
    assert decision.reason.startswith("29 labelled customers in the smaller arm") and "needs 30" in decision.reason
    assert decide(running(), seen(labelled_customers={}), POLICY).action == HOLD  # no step figures: no ramp
    assert decide(running(), seen(labelled_customers={"B": 100}), POLICY).action == HOLD


def test_a_ramp_needs_the_interval_to_show_at_most_the_harm_margin():
    assert decide(running(), seen(ci_low=-POLICY.harm_margin), POLICY).action == RAMP  # the margin itself is enough
    decision = decide(running(), seen(ci_low=-0.021, ci_high=0.05), POLICY)
    assert decision.action == HOLD and decision.reason.startswith("not yet shown at most 2.0 pts worse")
    assert decide(running(), seen(ci_low=math.nan, ci_high=math.nan), POLICY).action == HOLD  # no interval yet


# 8. otherwise hold; the last step holds until the test decides


def test_the_last_step_holds_until_the_test_decides():
    decision = decide(running(split=0.5), seen(), POLICY)
    assert decision.action == HOLD and decision.target_split is None
    assert decision.reason == "at the last step (50%): collecting until the test decides"


def test_a_split_above_the_last_step_holds_too():
    assert decide(running(split=0.8), seen(), POLICY).action == HOLD


def test_shadow_mode_ramps_to_the_first_step():
    decision = decide(running(mode=SHADOW, split=0.0), seen(), POLICY)
    assert decision.action == RAMP and decision.target_split == POLICY.ramp_steps[0]


def test_next_step_walks_the_configured_steps_upwards_only():
    policy = RolloutSettings(steps="0.1,0.3,1")
    assert [next_step(running(split=s), policy) for s in (0.0, 0.05, 0.1, 0.2, 0.3, 1.0)] == [0.1, 0.1, 0.3, 0.3, 1.0,
                                                                                             None]
    assert next_step(running(mode=SHADOW, split=0.3), policy) == 0.1


# the watch after a promotion


def test_a_watched_champion_conclusively_worse_than_its_predecessor_is_rolled_back():
    decision = watch(watched(), Watch(-0.10, -0.15, -0.05, 1200), POLICY)
    assert decision.action == ROLLBACK and decision.mode == AUTO and decision.acts
    assert "v2 - v1 = -10.0 pts" in decision.reason
    assert decision.figures == {"diff": -0.10, "ci_low": -0.15, "ci_high": -0.05, "labelled": 1200}


@pytest.mark.parametrize("ci_high", [0.0, 0.02])
def test_a_watched_champion_not_conclusively_worse_is_held(ci_high):
    decision = watch(watched(), Watch(-0.03, -0.08, ci_high, 1200), POLICY)
    assert decision.action == HOLD and decision.reason.startswith("watching v2: v2 - v1 = -3.0 pts")


def test_a_watch_without_an_interval_holds():
    for nothing in (None, Watch(math.nan, math.nan, math.nan, 12)):
        decision = watch(watched(), nothing, POLICY)
        assert decision.action == HOLD and "not enough labelled requests yet" in decision.reason


def test_the_watch_expires_after_watch_hours():
    worse = Watch(-0.10, -0.15, -0.05, 1200)
    assert watch(watched(promoted_at=hours_ago(POLICY.watch_hours - 0.01)), worse, POLICY).action == ROLLBACK
    decision = watch(watched(promoted_at=hours_ago(POLICY.watch_hours)), worse, POLICY)
    assert decision.action == HOLD and decision.reason == "the watch of v2 ended (72.0 h after its promotion)"


def test_a_journalled_rollback_is_finished_first_even_after_the_watch():
    for promoted in (hours_ago(1), hours_ago(POLICY.watch_hours + 1)):
        decision = watch(watched(promoted_at=promoted, champion_journalled=ROLLBACK), None,
                         RolloutSettings(rollback=OFF))
        assert (decision.action, decision.mode, decision.acts) == (ROLLBACK, AUTO, True)
        assert decision.reason == "finishing the rollback decided earlier"


def test_a_champion_is_still_watched_while_a_new_challenger_runs():
    decision = watch(watched(challenger="3"), Watch(-0.10, -0.15, -0.05, 1200), POLICY)
    assert decision.action == ROLLBACK and watching(watched(challenger="3"), POLICY)
    assert not watching(watched(challenger="3", promoted_at=hours_ago(POLICY.watch_hours)), POLICY)


@pytest.mark.parametrize("changes", [{"promoted_at": None}, {"previous": None}])
def test_there_is_no_watch_without_a_promoted_champion_and_its_predecessor(changes):
    decision = watch(watched(**changes), Watch(-0.10, -0.15, -0.05, 1200), POLICY)
    assert decision.action == HOLD and decision.reason == "no promoted champion to watch"


def _champions(rng: np.random.Generator, old: float, new: float, customers: int = 200, per: int = 8) -> pd.DataFrame:
    unit = np.repeat(np.arange(customers), per)
    after = np.tile([False, True], customers * per // 2)
    right = rng.random(len(unit)) < np.where(after, new, old)
    return pd.DataFrame({"unit": unit, "right": right, "after": after})


def test_compare_champions_feeds_the_watch_a_conclusive_drop():
    seen_ = compare_champions(_champions(np.random.default_rng(1), 0.80, 0.60), TH)
    assert seen_.labelled == 1600 and seen_.ci_high < 0 and seen_.ci_low < seen_.diff < seen_.ci_high
    assert seen_.diff == pytest.approx(-0.2, abs=0.05)
    assert watch(watched(), seen_, POLICY).action == ROLLBACK


def test_compare_champions_holds_an_equal_champion_and_waits_for_min_labelled_on_each_side():
    same = compare_champions(_champions(np.random.default_rng(2), 0.75, 0.75), TH)
    assert same.ci_low < 0 < same.ci_high and watch(watched(), same, POLICY).action == HOLD
    few = _champions(np.random.default_rng(3), 0.80, 0.40)
    few = pd.concat([few[~few["after"]], few[few["after"]].head(TH.min_labelled - 1)])
    early = compare_champions(few, TH)
    assert math.isnan(early.ci_high) and early.labelled == len(few)
    assert "not enough labelled requests yet" in watch(watched(), early, POLICY).reason


# modes: what the DAG may do by itself


def test_each_action_carries_its_mode_and_only_auto_acts():
    policy = RolloutSettings(ramp=ASK, promote=OFF, stop=ASK, rollback=OFF)
    cases = [(decide(running(), seen(), policy), RAMP, ASK),
             (decide(running(split=TOP), promotable(), policy), PROMOTE, OFF),
             (decide(running(), seen(verdict=KEEP), policy), STOP, ASK),
             (watch(watched(), Watch(-0.1, -0.15, -0.05, 900), policy), ROLLBACK, OFF)]
    for decision, action, mode in cases:
        assert (decision.action, decision.mode, decision.acts) == (action, mode, False)


def test_a_hold_never_acts_whatever_the_modes():
    for policy in (POLICY, RolloutSettings(ramp=ASK, promote=ASK, stop=ASK, rollback=ASK)):
        decision = decide(running(split=0.5), seen(), policy)
        assert decision.action == HOLD and decision.mode == AUTO and not decision.acts


def test_the_action_names_are_the_modes_settings_names():
    for action in (RAMP, PROMOTE, STOP, ROLLBACK):
        assert getattr(POLICY, action) == AUTO  # Decision.mode is read by the action's name
    assert set(rollout.ACTIONS) == {HOLD, RAMP, PROMOTE, STOP, ROLLBACK}


# the look the DAG builds from analysis.py's summary


def test_look_from_summary_reads_what_the_rule_needs():
    summary = {"comparison": {"diff": 0.05, "ci_low": 0.01, "ci_high": 0.09, "n_a": 700, "n_b": 300},
               "verdict": {"action": PROMOTE_VERDICT, "reason": "more accurate"},
               "srm": {"flagged": False},
               "guardrails": [{"name": "p95 latency", "status": "breached"}, {"name": "error rate", "status": "ok"}],
               "step": {"labelled_customers": {"A": 120, "B": 35}},
               "label_sources": {"deciding": ["agent_label"]}}
    look = look_from_summary(summary)
    assert look == Look(verdict=PROMOTE_VERDICT, reason="more accurate", diff=0.05, ci_low=0.01, ci_high=0.09,
                        labelled_customers={"A": 120, "B": 35}, labelled=1000, srm_flagged=False,
                        breached=("p95 latency",), deciding_sources=("agent_label",))
    bare = look_from_summary({**summary, "guardrails": [], "step": {}, "label_sources": None})
    assert bare.labelled_customers == {} and bare.breached == () and bare.deciding_sources == ()
