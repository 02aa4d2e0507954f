"""The guardrails (`analysis.guardrails`): p99 latency catches a tail p95 does not see, and a topic on which
the challenger is credibly much worse blocks a promotion, while a topic too thin to judge does not."""

import numpy as np
import pandas as pd
import pytest

from analysis import guardrails
from analysis.guardrails import BREACHED, NOT_APPLICABLE, OK
from analysis.prepare import Prepared
from analysis.verdict import GUARDRAIL, PROMOTE, Evidence, decide
from ticket_ab import logscan
from ticket_ab.names import SHADOW, SPLIT
from ticket_ab.settings import ABSettings

TH = ABSettings(resamples=50)


def _rows(topics: dict[str, tuple[int, float, float]], customers: int = 600, slow_b_share: float = 0.0,
          seed: int = 0) -> pd.DataFrame:
    """Labelled split-mode rows, customers 50/50: per topic (requests, A's accuracy, B's accuracy); a share
    of B's requests ten times slower than usual (a tail p95 does not reach when below 5%)."""
    rng = np.random.default_rng(seed)
    in_b_customer = rng.random(customers) < 0.5
    frames = []
    for topic, (n, acc_a, acc_b) in topics.items():
        unit = rng.integers(0, customers, n)
        in_b = in_b_customer[unit]
        right = rng.random(n) < np.where(in_b, acc_b, acc_a)
        latency = rng.lognormal(np.log(12), 0.2, n) * np.where(in_b & (rng.random(n) < slow_b_share), 10, 1)
        frames.append(pd.DataFrame({"unit": unit.astype(str), "variant": np.where(in_b, "B", "A"), "label": topic,
                                    "topic": np.where(right, topic, "other"), "fallback": False,
                                    "latency_ms": latency}))
    return pd.concat(frames, ignore_index=True)


def _by_name(checks: list[guardrails.Guardrail]) -> dict[str, guardrails.Guardrail]:
    return {g.name: g for g in checks}


def _check(rows: pd.DataFrame, mode: str, looks: int, seq: bool) -> list[guardrails.Guardrail]:
    """Every guardrail of analysed rows: the serving ones from their SQL aggregates (view `an`), the topics'."""
    with logscan.connect(256) as con:
        con.register("an_rows", rows.assign(fallback=np.where(rows["fallback"], "challenger_error", "")))
        con.execute("CREATE TEMP VIEW an AS SELECT * FROM an_rows")
        serving = guardrails.serving(Prepared(con), mode, looks, TH, seq)
    return serving + guardrails.topic_guardrails(rows, mode, looks, TH, seq)


def test_a_slow_tail_below_the_p95_is_caught_by_the_p99_guardrail():
    rows = _rows({"billing": (8000, 0.8, 0.8)}, customers=2000, slow_b_share=0.03)
    checks = _by_name(_check(rows, SPLIT, len(rows), seq=False))
    assert checks["p95 latency"].status == OK
    p99 = checks["p99 latency"]
    assert p99.status == BREACHED and p99.ci_low > p99.margin
    a = rows.loc[rows["variant"] == "A", "latency_ms"]
    assert p99.margin == max(TH.latency_margin * a.quantile(0.99), TH.latency_margin_ms)  # p95's margin rule


def test_a_topic_on_which_the_challenger_is_credibly_much_worse_blocks_a_promotion():
    rows = _rows({"billing": (3000, 0.85, 0.40), "network": (3000, 0.70, 0.90), "hr_onboarding": (40, 0.8, 0.8)})
    checks = _by_name(_check(rows, SPLIT, 6040, seq=True))
    billing = checks["accuracy on billing"]
    assert billing.status == BREACHED and billing.margin == -TH.topic_margin
    assert billing.ci_high < -TH.topic_margin and "beyond the margin of -15.0 pts" in billing.text
    assert checks["accuracy on network"].status == OK and checks["accuracy on network"].ci_low >= -TH.topic_margin
    verdict = decide(Evidence(n_a=3000, n_b=3000, diff=0.05, ci_low=0.02, ci_high=0.08,
                              guardrails=list(checks.values())), TH)
    assert verdict.action == GUARDRAIL and "accuracy on billing" in verdict.reason


def test_a_topic_too_thin_to_judge_is_shown_but_does_not_hold_a_promotion():
    rows = _rows({"network": (3000, 0.70, 0.90), "hr_onboarding": (40, 0.8, 0.7)})
    thin = _by_name(_check(rows, SPLIT, 3040, seq=True))["accuracy on hr_onboarding"]
    assert thin.status == NOT_APPLICABLE and thin.ci_low < -TH.topic_margin < thin.ci_high  # unresolved, in truth
    assert "only a breach blocks" in thin.text
    verdict = decide(Evidence(n_a=1500, n_b=1500, diff=0.2, ci_low=0.15, ci_high=0.25, guardrails=[thin]), TH)
    assert verdict.action == PROMOTE


def test_topics_without_labels_in_both_arms_get_no_guardrail():
    rows = _rows({"network": (2000, 0.8, 0.8)})
    rows = pd.concat([rows, rows[rows["variant"] == "A"].head(30).assign(label="email")], ignore_index=True)
    names = [g.name for g in _check(rows, SPLIT, len(rows), seq=True)]
    assert "accuracy on network" in names and "accuracy on email" not in names


def test_in_shadow_mode_the_topic_guardrail_is_the_paired_difference_on_the_same_tickets():
    rows = _rows({"billing": (3000, 0.85, 0.85)}).assign(shadow_topic="other", shadow_version="4")
    checks = _by_name(_check(rows.assign(variant="A"), SHADOW, len(rows), seq=True))
    billing = checks["accuracy on billing"]
    right_a = (rows["topic"] == "billing").mean()
    assert billing.diff == pytest.approx(-right_a) and billing.status == BREACHED  # the shadow never names billing
    assert set(checks) == {"fallback rate", "accuracy on billing"}
