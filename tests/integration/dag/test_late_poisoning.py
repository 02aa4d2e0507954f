"""Late feedback poisoning, replayed end to end through the real router and `airflow dags test`.

The attack waits until a drifted window has been read (and its labelled tickets kept in the label
store), then labels every stored network ticket of it `billing`, over five integrations: feedback
for tickets of an earlier window, which used to become training gold directly. What must hold: the
late labels wait as pending, also through a run that does not relabel; the next quarantine judges
them with that window's own feedback, names the pattern and holds them; and no poisoned label ever
reaches a training draw (a held ticket trains on the champion's answer, never on the late label).
"""

from __future__ import annotations

import pandas as pd
import pytest
from replay import PATTERN, POISON, SOURCES, TARGET, feedback_for, send_feedback, serve

from load_test.simulate.generator import generate
from retrain.adapters import labelstore
from retrain.ml.patterns import confirmed
from ticket_ab import registry
from ticket_ab.settings import Settings

pytestmark = pytest.mark.slow
SEED = 73


def _late_poison(first: pd.DataFrame, stored: set[str]) -> pd.DataFrame:
    """Every network ticket of the first window that the label store kept, labelled billing, round-robin."""
    network = first.loc[first["true_topic"].eq(TARGET) & first["request_id"].isin(stored)]
    return pd.DataFrame({"request_id": network["request_id"].to_numpy(), "label": POISON,
                         "source": [SOURCES[i % len(SOURCES)] for i in range(len(network))]})


def _store(settings: Settings) -> pd.DataFrame:
    return labelstore.load(labelstore.path_for(settings.data_dir))


def _run_dirs(settings: Settings) -> list[str]:
    return sorted(str(p) for p in (settings.reports_dir / "runs").iterdir() if p.is_dir())


def test_late_poisoning_waits_as_pending_is_held_by_the_next_quarantine_and_never_trains(
        replay_settings, router_url, run_dag, versions):
    settings = replay_settings
    first = serve(router_url, generate("new_product", 1600, SEED, start="2026-04-01T00:00:00Z"))
    send_feedback(router_url, feedback_for(first, 0.5, SEED, poison=False))
    run = run_dag(settings, "2026-05-01")
    assert run.returncode == 0 and "drift (" in run.report, run.log[-3000:]
    late = _late_poison(first, set(_store(settings)["request_id"].dropna()))
    assert len(late) >= 40, len(late)  # the window's labelled network tickets are in the store
    send_feedback(router_url, late)  # after the window was read: late feedback

    calm = serve(router_url, generate("baseline", 400, SEED + 1, start="2026-04-05T00:00:00Z"))
    send_feedback(router_url, feedback_for(calm, 0.5, SEED + 1, poison=False))
    quiet = run_dag(settings, "2026-05-02")  # no drift: this run does not relabel

    assert quiet.returncode == 0 and "no_drift" in quiet.report, quiet.log[-3000:]
    waiting = labelstore.pending(_store(settings))
    assert f"| feedback_late_pending | {len(waiting)} |" in quiet.report
    poison = waiting.loc[waiting["request_id"].isin(set(late["request_id"]))]
    assert len(poison) == len(late) and poison["topic"].eq(POISON).all()
    # Besides the attack, only the first window's own feedback read again (from the request watermark on)
    # where cleanlab changed the label; where the store has it as gold already it is no news.
    assert len(waiting) - len(late) <= 0.02 * len(first)
    assert not _poison_drawn(_store(settings), late)  # waiting is not training

    third = serve(router_url, generate("new_product", 1200, SEED + 2, start="2026-04-10T00:00:00Z"))
    send_feedback(router_url, feedback_for(third, 0.5, SEED + 2, poison=False))
    before = {v.version for v in versions()}
    judged = run_dag(settings, "2026-05-03")

    assert judged.returncode == 0, judged.log[-3000:]
    assert f"suspicious label pattern quarantined: {PATTERN}" in judged.report
    print("\n" + "\n".join(line for line in judged.report.splitlines() if line.startswith("| late_")))
    assert f"| late_judged | {len(waiting)} |" in judged.report
    store = _store(settings)
    assert labelstore.pending(store).empty  # judged: nothing waits any more
    rows = store.loc[store["request_id"].isin(set(late["request_id"]))]
    assert not (rows["topic"].eq(POISON) & rows["status"].eq(labelstore.OK)).any()  # no poisoned label became gold
    assert rows["status"].eq(labelstore.QUARANTINED).sum() >= 0.9 * len(late)
    train = pd.read_parquet(f"{_run_dirs(settings)[-1]}/relabelled.parquet")
    assert not train.loc[train["request_id"].isin(set(late["request_id"])), "topic"].eq(POISON).any()
    _assert_the_challengers_draw_holds_no_poison(settings, store, late, [v for v in versions()
                                                                         if v.version not in before])


def _poison_drawn(store: pd.DataFrame, late: pd.DataFrame, **draw) -> bool:
    """Whether a late poisoned label is among the rows a retrain would draw (the champion's own answer
    `billing` on a held ticket is what it already believed, not the attack's label)."""
    drawn = labelstore.draw(store, 1_000_000, **draw)
    poisoned = drawn["request_id"].isin(set(late["request_id"])) & drawn["topic"].eq(POISON)
    return bool((poisoned & drawn["origin"].ne(labelstore.CHAMPION)).any())


def _assert_the_challengers_draw_holds_no_poison(settings: Settings, store: pd.DataFrame, late: pd.DataFrame,
                                                 new: list) -> None:
    """Rebuild the draw of the version the third run trained (its fingerprint proves it is the same data)."""
    (found,) = new
    version = registry.connect(settings.tracking_uri).get_model_version(settings.model_name, found.version)
    holdout = pd.read_parquet(f"{_run_dirs(settings)[-1]}/holdout.parquet")
    draw = {"exclude": set(labelstore.keys_for(holdout)), "confirmed": confirmed(settings.feedback.confirmed_patterns),
            "held_topics": {TARGET, POISON}}
    rebuilt = labelstore.draw(store, settings.training.store_max_rows, **draw)
    assert labelstore.fingerprint(rebuilt) == version.tags["label_store_fingerprint"]
    assert not _poison_drawn(store, late, **draw)
    print(f"v{version.version} ({version.tags.get('validation_status')}, aliases {list(version.aliases)}): "
          f"{version.tags.get('gate_reason')}")
    assert registry.CHAMPION not in version.aliases
