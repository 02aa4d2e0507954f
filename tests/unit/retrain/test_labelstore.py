"""The label store: what a retrain may draw, what waits (late feedback), and what a held label trains on."""

import pandas as pd
import pytest

from retrain.adapters import labelstore
from retrain.adapters.labelstore import GOLD, OK, PENDING, QUARANTINED

PATTERN = "network->billing"


def _tickets(n: int, topic: str, *, start: int = 0, day: str = "2026-04-01", **extra) -> pd.DataFrame:
    return pd.DataFrame({"request_id": [f"r{start + i}" for i in range(n)],
                         "ticket_id": [f"T{start + i}" for i in range(n)], "customer_id": "C-1",
                         "text": [f"{topic} ticket {start + i}" for i in range(n)], "topic": topic,
                         "label_source": "desk", "timestamp": pd.Timestamp(day, tz="UTC"), **extra})


def _store(*parts: pd.DataFrame) -> pd.DataFrame:
    store = labelstore.empty()
    for part in parts:
        store = labelstore.upsert(store, part)
    return store


def _late(pairs: dict[str, str], source: str = "late-desk") -> pd.DataFrame:
    return pd.DataFrame({"request_id": list(pairs), "label": list(pairs.values()), "source": source})


def test_late_feedback_waits_beside_its_ticket_and_is_never_drawn():
    store = _store(labelstore.rows_from(_tickets(3, "network"), GOLD))
    store, added = labelstore.add_pending(store, _late({"r0": "billing", "r1": "billing", "r-unknown": "email"}))

    assert added == 2  # a request the store does not hold has no ticket to wait beside
    waiting = labelstore.pending(store)
    assert waiting[labelstore.KEY].tolist() == ["late:r0", "late:r1"]
    assert waiting["topic"].eq("billing").all() and waiting["label_source"].eq("late-desk").all()
    assert waiting["text"].tolist() == ["network ticket 0", "network ticket 1"]  # the ticket's own text
    tickets = store.set_index(labelstore.KEY).loc[["r0", "r1", "r2"]]
    assert tickets["topic"].eq("network").all() and tickets["status"].eq(OK).all()  # untouched until judged
    drawn = labelstore.draw(store, 100)
    assert sorted(drawn[labelstore.KEY]) == ["r0", "r1", "r2"] and drawn["topic"].eq("network").all()


def test_a_windows_own_feedback_read_again_is_not_late_news():
    store = _store(labelstore.rows_from(_tickets(2, "network"), GOLD),
                   labelstore.rows_from(_tickets(1, "email", start=5), labelstore.PSEUDO))
    store, added = labelstore.add_pending(store, _late({"r0": "network", "r1": "billing", "r5": "email"}))
    assert added == 2  # r0 already has `network` as gold; a pseudo-label is no agent's judgement
    assert sorted(labelstore.pending(store)[labelstore.KEY]) == ["late:r1", "late:r5"]


def test_the_same_late_feedback_read_again_changes_nothing_and_a_newer_label_replaces_the_pending_one():
    store = _store(labelstore.rows_from(_tickets(2, "network"), GOLD))
    once, _ = labelstore.add_pending(store, _late({"r0": "billing"}))
    twice, _ = labelstore.add_pending(once, _late({"r0": "billing"}))
    pd.testing.assert_frame_equal(once, twice)
    corrected, _ = labelstore.add_pending(twice, _late({"r0": "email"}, source="other-desk"))
    assert labelstore.pending(corrected)[["topic", "label_source"]].values.tolist() == [["email", "other-desk"]]
    assert labelstore.pending(labelstore.drop_keys(corrected, {"late:r0"})).empty


def test_a_held_label_is_not_drawn_but_its_ticket_is_with_the_champions_answer():
    held = _tickets(4, "billing").assign(pattern=PATTERN, champion_topic=["network", "network", "network", None])
    store = _store(labelstore.rows_from(_tickets(3, "email", start=10), GOLD),
                   labelstore.rows_from(held, GOLD, QUARANTINED))

    drawn = labelstore.draw(store, 100).set_index(labelstore.KEY)
    assert drawn.loc[["r0", "r1", "r2"], "topic"].eq("network").all()  # the champion's answer, never `billing`
    assert drawn.loc[["r0", "r1", "r2"], "origin"].eq(labelstore.CHAMPION).all()
    assert "r3" not in drawn.index  # no answer recorded: nothing to train on
    confirmed = labelstore.draw(store, 100, confirmed={PATTERN}).set_index(labelstore.KEY)
    assert confirmed.loc[["r0", "r1", "r2", "r3"], "topic"].eq("billing").all()  # an operator confirmed the label
    assert (store["status"] == QUARANTINED).sum() == 4  # the store keeps the held labels for review


def test_a_held_topic_keeps_its_share_of_the_draw_when_the_recency_cap_bites():
    old_network = labelstore.rows_from(_tickets(200, "network", day="2026-01-01"), GOLD)
    new_others = labelstore.rows_from(_tickets(800, "email", start=1000, day="2026-04-01"), GOLD)
    store = _store(old_network, new_others)

    plain = labelstore.draw(store, 500)
    held = labelstore.draw(store, 500, held_topics={"network"})

    assert plain["topic"].eq("network").sum() == 0  # newest first: the window's topics push it out
    assert len(held) == 500 and held["topic"].eq("network").sum() == 100  # 20% of the store, 20% of the draw
    network = held.loc[held["topic"].eq("network"), "timestamp"]
    assert network.is_monotonic_decreasing and held["timestamp"].is_monotonic_decreasing  # still newest first
    assert labelstore.draw(store, 5000, held_topics={"network"}).pipe(len) == 1000  # no cap: everything


@pytest.mark.parametrize("held_topics", [set(), {"network"}])
def test_the_draw_never_returns_the_gate_gold_nor_more_rows_than_the_cap(held_topics):
    store = _store(labelstore.rows_from(_tickets(50, "network"), GOLD),
                   labelstore.rows_from(_tickets(50, "email", start=100), GOLD))
    drawn = labelstore.draw(store, 30, exclude={f"r{i}" for i in range(40)}, held_topics=held_topics)
    assert len(drawn) == 30 and drawn[labelstore.KEY].is_unique
    assert not drawn[labelstore.KEY].isin({f"r{i}" for i in range(40)}).any()


def test_a_store_written_before_a_column_existed_reads_it_as_empty(tmp_path):
    path = tmp_path / "labels.parquet"
    store = labelstore.upsert(labelstore.empty(), labelstore.rows_from(_tickets(2, "email"), GOLD))
    store.drop(columns="champion_topic").to_parquet(path, index=False)

    loaded = labelstore.load(path)

    assert list(loaded.columns) == list(labelstore.COLUMNS) and loaded["champion_topic"].isna().all()
    assert len(labelstore.draw(loaded, 10)) == 2
    assert labelstore.summary(labelstore.add_pending(loaded, _late({"r0": "billing"}))[0]) == {
        f"{GOLD}_{OK}": 2, f"{GOLD}_{PENDING}": 1, "rows": 3}


def test_tickets_past_retention_are_forgotten_but_not_the_champions_reference_nor_pending_labels():
    old = labelstore.rows_from(_tickets(3, "network", day="2025-01-01"), GOLD)
    new = labelstore.rows_from(_tickets(2, "email", start=10, day="2026-04-01"), GOLD)
    reference = labelstore.rows_from(_tickets(2, "access", start=20).drop(columns="timestamp"), labelstore.BOOTSTRAP)
    store, waiting = labelstore.add_pending(_store(old, new, reference), _late({"r0": "billing"}))
    assert waiting == 1
    now = pd.Timestamp("2026-04-02", tz="UTC")
    kept = labelstore.expire(store, 365, now)
    assert set(kept[labelstore.KEY]) == set(new[labelstore.KEY]) | set(reference[labelstore.KEY]) | {"late:r0"}
    assert labelstore.expire(store, 0, now).equals(store)
