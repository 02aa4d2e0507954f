"""Targeted feedback poisoning, replayed end to end: tickets through the real gunicorn router, feedback
through its POST /feedback with one bearer token per integration, then `airflow dags test` on the
router's own logs against a real MLflow registry.

The attack: every `network` ticket that gets feedback is labelled `billing` (10-20% of all feedback),
spread round-robin over five integrations, so neither the source guard nor the label guard of the
window can see it. What must hold: no version that learned network -> billing holds an alias, the
champion alias never moves, the run report names the pattern, and the poisoned labels train nothing.
Nor may the quarantine leave the topic behind: no version whose accuracy on fresh network tickets
is more than 5 points below the champion's holds an alias, and the gate judged both held topics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from replay import (
    PATTERN,
    POISON,
    SOURCES,
    TARGET,
    billing_rate,
    feedback_for,
    network_accuracy,
    overall_accuracy,
    send_feedback,
    serve,
)
from scipy.stats import binomtest

from load_test.simulate.generator import generate
from retrain.adapters import labelstore
from ticket_ab import registry
from ticket_ab.requestlog import read_feedback, read_requests
from ticket_ab.settings import Settings

pytestmark = pytest.mark.slow
N_TICKETS, FEEDBACK_SHARE, SEED = 1600, 0.5, 71
LOGICAL_DATE = "2026-05-01"
# A learned pattern shows as challenger-only billing answers on network tickets that are too many to be chance.
LEARNED_P = 0.01
LEFT_BEHIND = 0.05  # a version this far below the champion's accuracy on fresh network tickets left the topic behind


def learned_the_pattern(candidate: np.ndarray, champion: np.ndarray) -> tuple[bool, float]:
    """Whether the candidate sends more network tickets to billing than the champion beyond chance.

    Paired on the same tickets (exact McNemar): among the tickets only one model sends to billing,
    the candidate's count is binomial(n, 1/2) when it learned nothing. Returns (learned, p).
    """
    only_candidate = int((candidate & ~champion).sum())
    only_champion = int((champion & ~candidate).sum())
    if only_candidate + only_champion == 0:
        return False, 1.0
    p = binomtest(only_candidate, only_candidate + only_champion, 0.5, alternative="greater").pvalue
    return bool(p < LEARNED_P), float(p)


def _champion_moves(client, name: str, version: str) -> list[str]:
    """The champion alias events recorded on `version` (registry.move_alias tags every move)."""
    tags = client.get_model_version(name, version).tags
    return sorted(v for k, v in tags.items() if k.startswith("alias_event.") and '"alias": "champion"' in v)


def _run_dir(settings: Settings) -> str:
    (directory,) = [p for p in (settings.reports_dir / "runs").iterdir() if p.is_dir()]
    return str(directory)


def test_poisoning_replayed_through_router_and_dag_reaches_no_alias_and_the_report_names_it(
        replay_settings, router_url, run_dag, versions):
    settings = replay_settings
    client = registry.connect(settings.tracking_uri)
    champion = registry.version_for(client, settings.model_name, registry.CHAMPION).version
    champion_moves = _champion_moves(client, settings.model_name, champion)
    before = {v.version for v in versions()}

    tickets = generate("new_product", N_TICKETS, SEED, start="2026-04-01T00:00:00Z")
    feedback = feedback_for(serve(router_url, tickets), FEEDBACK_SHARE, SEED)
    send_feedback(router_url, feedback)

    logged = read_feedback(settings.logs_dir).rows
    assert len(logged) == len(feedback) and set(logged["source"]) == set(SOURCES)
    shares = logged["source"].value_counts(normalize=True)
    assert shares.max() <= settings.feedback.max_source_share  # no integration dominates
    poisoned_share = feedback["poisoned"].mean()
    assert 0.10 <= poisoned_share <= 0.20
    print(f"\nfeedback {len(feedback)} rows, poisoned share {poisoned_share:.3f}, sources {shares.round(3).to_dict()}")

    run = run_dag(settings, LOGICAL_DATE)

    assert run.returncode == 0, run.log[-3000:]
    assert "feedback refused" not in run.report  # the guards of the window did not see it: the pattern must
    assert f"suspicious label pattern quarantined: {PATTERN}" in run.report  # the summary line operators grep
    (named,) = [line for line in run.report.splitlines() if line.startswith(f"- {PATTERN}: ")]
    print(run.report.splitlines()[2], named, sep="\n")
    assert "Suspicious feedback label patterns" in run.report
    assert "Held topics (their window labels were quarantined)" in run.report  # the gate judged them label-free
    assert f"| {TARGET} |" in run.report and f"| {POISON} |" in run.report
    assert registry.version_for(client, settings.model_name, registry.CHAMPION).version == champion
    assert _champion_moves(client, settings.model_name, champion) == champion_moves  # not even moved and back
    _assert_poison_trained_nothing(settings, feedback)
    _assert_no_version_that_learned_it_holds_an_alias(settings, client, champion,
                                                     [v.version for v in versions() if v.version not in before])


def _assert_poison_trained_nothing(settings: Settings, feedback: pd.DataFrame) -> None:
    """The poison is quarantined under the pattern's name, so it neither trains nor gates: a poisoned
    label may only get through where the champion was already sure of billing (it teaches nothing new)."""
    directory = _run_dir(settings)
    window = pd.read_parquet(f"{directory}/window.parquet")
    assert window["customer_id"].notna().all()  # the customer (the gate's cluster) survives the router
    assert window["label_source"].dropna().isin(SOURCES).all()
    store = labelstore.load(labelstore.path_for(settings.data_dir))
    quarantined = store.loc[store["status"] == labelstore.QUARANTINED]
    assert len(quarantined) and quarantined["pattern"].eq(PATTERN).all()
    poisoned = set(feedback.loc[feedback["poisoned"], "request_id"])
    served = read_requests(settings.logs_dir).rows.set_index("request_id")
    escaped = served.loc[sorted(poisoned - set(quarantined["request_id"]))]
    sure = escaped["topic"].eq(POISON) & (escaped["confidence"] >= settings.feedback.pattern_confidence)
    assert sure.all(), escaped[["topic", "confidence"]]
    train = pd.read_parquet(f"{directory}/relabelled.parquet")
    trained = train.loc[train["request_id"].isin(poisoned) & train["topic"].eq(POISON)]
    print(f"poisoned labels {len(poisoned)}, quarantined {len(quarantined)} (poisoned among them "
          f"{len(poisoned) - len(escaped)}), poisoned labels trained on {len(trained)}")


def _assert_no_version_that_learned_it_holds_an_alias(settings: Settings, client, champion: str,
                                                     new: list[str]) -> None:
    """Each new version is compared with the champion on fresh network tickets of the drifted month."""
    fresh = generate("new_product", 3000, SEED + 1, start="2026-04-20T00:00:00Z")
    network = fresh.loc[fresh["true_topic"] == TARGET]
    champion_model = _load(settings, champion)
    champion_billing = billing_rate(champion_model, network)
    champion_accuracy = network_accuracy(champion_model, network)
    print(f"champion v{champion}: {champion_billing.mean():.3f} of {len(network)} fresh network tickets -> billing, "
          f"network accuracy {champion_accuracy:.3f}, overall {overall_accuracy(champion_model, fresh):.3f}")
    for version in new:
        model, registered = _load(settings, version), client.get_model_version(settings.model_name, version)
        aliases = list(registered.aliases)
        candidate = billing_rate(model, network)
        learned, p = learned_the_pattern(candidate, champion_billing)
        accuracy = network_accuracy(model, network)
        print(f"new v{version} aliases {aliases}: {candidate.mean():.3f} -> billing (learned: {learned}, "
              f"one-sided exact McNemar p={p:.3g}); network accuracy {accuracy:.3f}, overall "
              f"{overall_accuracy(model, fresh):.3f}; gate: {registered.tags.get('gate_reason')}")
        assert not (aliases and learned), f"v{version} learned {PATTERN} and holds {aliases}"
        assert not (aliases and accuracy < champion_accuracy - LEFT_BEHIND), \
            f"v{version} left {TARGET} behind ({accuracy:.3f} vs {champion_accuracy:.3f}) and holds {aliases}"
        assert registry.CHAMPION not in aliases


def _load(settings: Settings, version: str):
    return registry.load_version(settings.model_name, version)
