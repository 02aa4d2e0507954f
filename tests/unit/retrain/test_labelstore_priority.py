"""The label store's `priority`: a store written before it reads it as missing, a priority-only row never replaces
a ticket's topic and a topic-only row never erases its priority (`upsert`), late priorities wait as pending like late
labels, and a memory without priorities keeps the fingerprint it had before them."""

from __future__ import annotations

import pandas as pd

from retrain.adapters import labelstore
from retrain.adapters.labelstore import BOOTSTRAP, GOLD, PRIORITY, PSEUDO


def _rows(origin: str, topics: list[str | None], priorities: list[str | None] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(topics))], "ticket_id": None, "customer_id": "C1",
                          "text": [f"ticket {i}" for i in range(len(topics))], "topic": topics, "label_source": "d",
                          "timestamp": pd.Timestamp("2026-03-01T10:00:00Z")})
    if priorities is not None:
        frame[PRIORITY] = priorities
    return labelstore.rows_from(frame, origin)


def _plain(frame: pd.DataFrame) -> list[list]:
    """The rows as lists, a missing value as None."""
    return frame.astype(object).where(frame.notna(), None).values.tolist()


def test_a_store_written_before_priorities_reads_them_as_missing_and_keeps_its_fingerprint(tmp_path):
    path = tmp_path / "labels.parquet"
    store = labelstore.upsert(labelstore.empty(), _rows(GOLD, ["email", "network"]))
    store.drop(columns=PRIORITY).to_parquet(path, index=False)  # as a store of the earlier code
    old = store.drop(columns=PRIORITY)

    loaded = labelstore.load(path)

    assert list(loaded.columns) == list(labelstore.COLUMNS) and loaded[PRIORITY].isna().all()
    assert labelstore.fingerprint(loaded) == labelstore.fingerprint(old.assign(**{PRIORITY: None}))
    with_priority = loaded.assign(**{PRIORITY: ["urgent", None]})
    assert labelstore.fingerprint(with_priority) != labelstore.fingerprint(loaded)


def test_a_priority_only_row_adds_its_priority_and_a_topic_only_row_keeps_it():
    store = labelstore.upsert(labelstore.empty(), _rows(PSEUDO, ["email", "network", "access"]))
    store = labelstore.upsert(store, _rows(GOLD, [None, None, None, None], ["urgent", "low", None, "high"]))
    got = store.set_index("key")
    assert _plain(got.loc[["r0", "r1", "r2"], ["topic", "origin", PRIORITY]]) == [
        ["email", PSEUDO, "urgent"], ["network", PSEUDO, "low"], ["access", PSEUDO, None]]
    assert pd.isna(got.loc["r3", "topic"]) and got.loc["r3", [PRIORITY, "origin"]].tolist() == ["high", GOLD]

    store = labelstore.upsert(store, _rows(GOLD, ["billing", None]))  # a later topic label without a priority
    got = store.set_index("key")
    assert got.loc["r0", ["topic", "origin", PRIORITY]].tolist() == ["billing", GOLD, "urgent"]
    assert got.loc["r1", ["topic", PRIORITY]].tolist() == ["network", "low"]
    assert labelstore.upsert(store, _rows(GOLD, [None], ["urgent"])).equals(store)  # re-applying changes nothing


def test_bootstrap_rows_keep_their_priorities_beside_gold_topics():
    reference = pd.DataFrame({"text": ["vpn down now", "printer jams"], "topic": ["network", "hardware"],
                              PRIORITY: ["urgent", None]})
    store = labelstore.upsert(labelstore.empty(), labelstore.rows_from(reference, BOOTSTRAP))
    drawn = labelstore.draw(store, 10).set_index("text")
    assert drawn.loc["vpn down now", PRIORITY] == "urgent" and pd.isna(drawn.loc["printer jams", PRIORITY])


def test_late_priorities_wait_as_pending_unless_the_ticket_already_has_them():
    store = labelstore.upsert(labelstore.empty(), _rows(GOLD, ["email", "network", "access"], [None, "low", None]))
    late = pd.DataFrame({"request_id": ["r0", "r1", "r2"], "label": ["", "", "billing"], "source": "desk-2",
                         PRIORITY: ["urgent", "low", ""]})

    store, added = labelstore.add_pending(store, late)

    waiting = labelstore.pending(store).set_index("key")
    assert added == 2 and sorted(waiting.index) == ["late:r0", "late:r2"]  # r1 already has that priority
    assert pd.isna(waiting.loc["late:r0", "topic"]) and waiting.loc["late:r0", PRIORITY] == "urgent"
    assert waiting.loc["late:r2", "topic"] == "billing" and pd.isna(waiting.loc["late:r2", PRIORITY])
    assert labelstore.draw(store, 10)[PRIORITY].tolist().count("urgent") == 0  # pending is never drawn
