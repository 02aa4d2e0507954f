"""Late feedback (a label for a ticket of an already read window) waits in the label store and is judged
by the next quarantine: `collect_window` stores it as pending on every run, `relabel`'s `remember`
writes the verdict onto its ticket."""

import pandas as pd
from logfiles import append_rows

from retrain.adapters import labelstore
from retrain.ml.relabel import GOLD, Relabelled
from retrain.tasks import collect, relabel
from retrain.tasks import window as win
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from ticket_ab.settings import get_settings


def _request(i: int, minute: int) -> list[str]:
    values = dict.fromkeys(REQUEST_COLUMNS, "")
    values.update(timestamp=f"2026-03-01T10:{minute:02d}:{i % 60:02d}+00:00", request_id=f"r{i}", ticket_id=f"T{i}",
                  customer_id=f"C{i % 5}", variant="A", split_b="0.5", mode="split", topic="network",
                  confidence="0.9", latency_ms="2.5", text=f"vpn drops every hour, case {i}")
    return [values[c] for c in REQUEST_COLUMNS]


def _stored_tickets(settings, ids: range) -> None:
    """Tickets an earlier run relabelled: gold `network` in the label store."""
    tickets = pd.DataFrame({"request_id": [f"r{i}" for i in ids], "ticket_id": [f"T{i}" for i in ids],
                            "customer_id": "C1", "text": [f"vpn drops every hour, case {i}" for i in ids],
                            "topic": "network", "label_source": "desk-1",
                            "timestamp": pd.Timestamp("2026-03-01T10:00:00Z")})
    labelstore.save(labelstore.path_for(settings.data_dir),
                    labelstore.upsert(labelstore.empty(), labelstore.rows_from(tickets, GOLD)))


def test_every_run_stores_late_feedback_as_pending_and_a_rerun_adds_nothing_twice(tmp_path):
    settings = get_settings(home=tmp_path / "home")
    _stored_tickets(settings, range(3))
    win.save_watermark(win.watermark_path(settings.airflow_dir),
                       win.Watermark(requests_until="2026-03-01T10:00:59+00:00"), run_id="earlier")
    append_rows(settings.logs_dir, REQUEST_COLUMNS, [_request(i, minute=5) for i in range(10, 13)])
    append_rows(settings.logs_dir, FEEDBACK_COLUMNS, [["2026-03-01T11:00:00+00:00", "r0", "billing", "desk-2"],
                                                      ["2026-03-01T11:00:01+00:00", "r1", "billing", "desk-3"],
                                                      ["2026-03-01T11:00:02+00:00", "r10", "network", "desk-1"]])

    collected = collect.collect_window(settings, "manual__1")  # a small window: this run will not relabel

    store = labelstore.load(labelstore.path_for(settings.data_dir))
    waiting = labelstore.pending(store)
    assert waiting[["key", "topic", "label_source"]].values.tolist() == [["late:r0", "billing", "desk-2"],
                                                                        ["late:r1", "billing", "desk-3"]]
    assert store.set_index("key").loc[["r0", "r1"], "topic"].eq("network").all()  # the tickets keep their label
    assert labelstore.draw(store, 100)["topic"].eq("network").all()  # nothing pending is drawn
    assert collected.stats["feedback_late"] == 2 and collected.stats["feedback_late_pending"] == 2
    collect.collect_window(settings, "manual__1")  # Airflow's retry of the same run
    pd.testing.assert_frame_equal(labelstore.load(labelstore.path_for(settings.data_dir)), store)


def _judged(late: pd.DataFrame, *, accepted: list[str], held: list[str]) -> Relabelled:
    """What `retrain.ml.relabel` returns for a window without own feedback and these late labels."""
    rows = late.rename(columns={"topic": "label"}).assign(topic=late["topic"], late=True)
    train = rows.loc[rows["request_id"].isin(accepted)].assign(label_origin=GOLD)
    quarantined = rows.loc[rows["request_id"].isin(held)].assign(pattern="network->billing",
                                                                 suggested_topic="network", confidence=0.95)
    empty = rows.iloc[0:0]
    return Relabelled(train=train, holdout=empty, review=empty, stats={}, quarantined=quarantined)


def test_the_next_quarantine_writes_its_verdict_onto_the_tickets_and_ends_the_wait(tmp_path):
    settings = get_settings(home=tmp_path / "home")
    _stored_tickets(settings, range(4))
    path = labelstore.path_for(settings.data_dir)
    late = pd.DataFrame({"request_id": ["r0", "r1", "r2"], "label": ["email", "billing", "billing"],
                         "source": "desk-2"})
    labelstore.save(path, labelstore.add_pending(labelstore.load(path), late)[0])
    pending = labelstore.pending(labelstore.load(path))
    reference = pd.DataFrame({"text": ["reset my password"], "topic": ["access"]})

    verdict = _judged(pending, accepted=["r0"], held=["r1"])  # r2: disputed by cleanlab, in the review queue
    counts = relabel.remember(path, reference, verdict, judged=set(pending["key"]))

    store = labelstore.load(path).set_index("key")
    assert labelstore.pending(store.reset_index()).empty and counts["rows"] == len(store)
    assert store.loc["r0", ["topic", "status", "label_source"]].tolist() == ["email", "ok", "desk-2"]
    assert store.loc["r1", ["topic", "status", "pattern", "champion_topic"]].tolist() == [
        "billing", "quarantined", "network->billing", "network"]
    assert store.loc[["r2", "r3"], "topic"].eq("network").all() and store.loc[["r2", "r3"], "status"].eq("ok").all()
    drawn = labelstore.draw(store.reset_index(), 100).set_index("key")
    assert drawn.loc["r1", "topic"] == "network"  # the held late label trains nothing; its ticket the champion's answer
