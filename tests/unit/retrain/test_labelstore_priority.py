"""The label store's `priority`: a store written before it reads it as missing, a priority-only row never replaces
a ticket's topic and a topic-only row never erases its priority (`upsert`), late priorities wait as pending like late
labels, and a memory without priorities keeps the fingerprint it had before them. A draw keeps each priority's share
of the store and enough of each for the selection's folds, however many newer rows have no priority, and rows with
only a priority never push topic rows out beyond that share; it logs what it holds. A store without priorities while
the champion's reference has some is said, not mended."""

from __future__ import annotations

import logging
import math

import pandas as pd

from retrain.adapters import labelstore
from retrain.adapters.labelstore import BOOTSTRAP, GOLD, PRIORITY, PSEUDO
from retrain.ml.automl import priority_rows
from retrain.ml.relabel import Relabelled
from retrain.tasks.relabel import remember
from ticket_ab.schema import PRIORITIES


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



def _bootstrap(counts: dict[str, int]) -> pd.DataFrame:
    """The champion's reference as bootstrap rows: `counts` tickets of each priority."""
    priorities = [p for p, n in counts.items() for _ in range(n)]
    reference = pd.DataFrame({"text": [f"old ticket {i}" for i in range(len(priorities))],
                              "topic": [("email", "network")[i % 2] for i in range(len(priorities))],
                              PRIORITY: priorities})
    return labelstore.rows_from(reference, BOOTSTRAP)


def _newer(n: int, *, topic: str | None = "access", priorities: list[str] | None = None,
           start: str = "2026-03-01") -> pd.DataFrame:
    """`n` gold rows newer than any bootstrap row, a minute apart (newest last)."""
    frame = pd.DataFrame({"request_id": [f"{topic or 'p'}-{i}" for i in range(n)], "ticket_id": None,
                          "customer_id": "C1", "text": [f"new ticket {topic} {i}" for i in range(n)], "topic": topic,
                          "label_source": "desk", "timestamp": pd.date_range(start, periods=n, freq="min", tz="UTC"),
                          PRIORITY: priorities})
    return labelstore.rows_from(frame, GOLD)


def test_a_draw_keeps_each_prioritys_share_and_enough_for_the_folds_past_newer_rows_without_priorities(logs):
    counts = {"low": 200, "medium": 150, "high": 60, "urgent": 4}
    store = labelstore.upsert(labelstore.upsert(labelstore.empty(), _bootstrap(counts)), _newer(2000))
    drawable = len(store)

    drawn = labelstore.draw(store, 500, folds=3)
    message = logs.records[-1].getMessage()

    assert len(drawn) == 500 and priority_rows(drawn, 3)[1] == ""  # the priority head can be cross-validated
    got = drawn[PRIORITY].value_counts()
    for priority, n in counts.items():
        assert got[priority] == max(math.ceil(500 * n / drawable), min(n, 3))  # its share, and at least the folds
    assert got["urgent"] == 3 and priority_rows(labelstore.draw(store, 500, folds=1), 3)[1] != ""
    assert drawn["topic"].notna().all()  # the rest are the newest topic rows
    left_out = sum(counts.values()) - int(got.sum())
    assert message.startswith("label_store_draw") and f"priority_rows={int(got.sum())}" in message
    assert f"priority_left_out={left_out}" in message and "priority_only_rows=0" in message
    assert f"urgent:{got['urgent']}" in message


def test_rows_with_only_a_priority_take_their_share_of_a_draw_and_never_push_topic_rows_out_beyond_it(logs):
    cycle = [PRIORITIES[i % 4] for i in range(600)]
    older_topics = _newer(400, start="2026-02-01")
    store = labelstore.upsert(older_topics, _newer(600, topic=None, priorities=cycle))

    drawn = labelstore.draw(store, 500)

    share = sum(math.ceil(500 * 150 / 1000) for _ in PRIORITIES)  # each priority: 150 of the 1000 drawable rows
    only = drawn["topic"].isna()
    assert int(only.sum()) == share and int((~only).sum()) == 500 - share
    newest = store.loc[store["topic"].isna()].sort_values("timestamp", ascending=False).groupby(PRIORITY).head(75)
    assert set(drawn.loc[only, "key"]) == set(newest["key"])  # the newest of each priority
    assert "priority_only_rows=300" in logs.records[-1].getMessage()
    assert len(labelstore.draw(store, 5000)) == 1000  # room for all: every row is drawn


def test_a_store_without_priorities_while_the_champions_reference_has_some_is_said_not_mended(tmp_path, logs):
    path = labelstore.path_for(tmp_path)
    old = _bootstrap({"low": 3}).assign(**{PRIORITY: None})  # seeded under a champion without priorities
    labelstore.save(path, old)
    reference = pd.DataFrame({"text": ["vpn down", "printer jams"], "topic": ["network", "hardware"],
                              PRIORITY: ["urgent", "low"]})
    empty = pd.DataFrame(columns=["ticket_id", "text", "topic", "label_origin", "late", "request_id", "customer_id",
                                  "label_source", "timestamp", PRIORITY])
    nothing = Relabelled(train=empty, holdout=empty.drop(columns=["label_origin", "late"]), review=pd.DataFrame(),
                         stats={}, quarantined=empty.assign(suggested_topic=None))

    summary = remember(path, reference, nothing, judged=set())

    assert summary["rows"] == 3 and labelstore.load(path)[PRIORITY].isna().all()  # nothing invented
    warned = [r for r in logs.records if r.getMessage().startswith("label_store_priorities")]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING and "reference has 2" in warned[0].getMessage()
    assert labelstore.missing_priorities(labelstore.load(path), reference.drop(columns=PRIORITY)) is None
    with_one = labelstore.upsert(labelstore.load(path), _newer(1, priorities=["high"]))
    assert labelstore.missing_priorities(with_one, reference) is None
