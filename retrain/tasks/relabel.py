"""Task 4, `relabel`: quarantine suspicious feedback, hold out untouched gold, clean the rest, pseudo-label
what is safe, queue the rest for agents, and remember every accepted label in the label store.

Late feedback waiting in the label store (`pending`, put there by `collect_window` on every run) is
judged here with the window's own feedback, the same way, and leaves the pending state for good:
accepted labels become their tickets' gold, quarantined ones their tickets' held labels, disputed
ones go to the review queue."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from retrain.adapters import labelstore
from retrain.ml.held import held_topics
from retrain.ml.relabel import FIXED, GOLD, PSEUDO, relabel, write_review_queue
from retrain.ml.relabel import Relabelled as Labels
from retrain.tasks.results import Checked, Collected, Relabelled
from ticket_ab import registry
from ticket_ab.log import get_logger, kv
from ticket_ab.schema import PRIORITY, TEXT, TOPIC
from ticket_ab.settings import Settings

log = get_logger("dag")
LATE_ORIGIN = "late"  # a late label's `origin` in the review queue


def relabel_window(settings: Settings, collected: Collected, checked: Checked) -> Relabelled:
    """Label the window against the champion; the agents' queue goes to reports/ and the run."""
    started = time.perf_counter()
    directory = collected.directory
    window = pd.read_parquet(collected.window_path)
    reference = pd.read_parquet(checked.reference_path)
    path = labelstore.path_for(settings.data_dir)
    late = labelstore.pending(labelstore.load(path))
    result = relabel(window, reference, settings.relabel, settings.seed, champion=load_champion(settings, checked),
                     guards=settings.feedback, late=as_window(late))
    train_path, holdout_path = directory / "relabelled.parquet", directory / "holdout.parquet"
    result.train.to_parquet(train_path, index=False)
    result.holdout.to_parquet(holdout_path, index=False)
    result.quarantined.drop(columns=["label"], errors="ignore").to_parquet(directory / "quarantined.parquet",
                                                                          index=False)
    review_path = write_review_queue(result.review, settings.reports_dir / "review_queue.csv")
    shutil.copyfile(review_path, directory / "review_queue.csv")
    store = remember(path, reference, result, judged=set(late[labelstore.KEY]),
                     retention_days=settings.training.store_retention_days)
    relabelled = Relabelled(train_path=str(train_path), holdout_path=str(holdout_path), review_path=str(review_path),
                            stats=result.stats, patterns=[str(p) for p in result.patterns], store=store,
                            held_topics=held_topics(p.name for p in result.patterns))
    s = result.stats
    log.info(kv("relabel", run_id=collected.run_id, gold=s["gold"], gold_fixed=s["gold_fixed"],
                gold_disputed=s["gold_disputed"], quarantined=s["quarantined"], patterns=";".join(s["patterns"]),
                holdout=s["holdout"], pseudo=s["pseudo"], pseudo_threshold=s["pseudo_threshold"],
                pseudo_verified=s["pseudo_verified"], pseudo_precision=s["pseudo_precision"], review=s["review"],
                late_judged=s["late_judged"], late_accepted=s["late_accepted"], late_quarantined=s["late_quarantined"],
                store_rows=store.get("rows"), seconds=time.perf_counter() - started))
    return relabelled


def as_window(pending: pd.DataFrame) -> pd.DataFrame:
    """Pending late labels as window rows: their tickets' ids and text, the late label and priority, their source."""
    columns = ["request_id", "ticket_id", "customer_id", "timestamp", TEXT, TOPIC, "label_source", PRIORITY]
    return pending[columns].rename(columns={TOPIC: "label", PRIORITY: "label_priority"}).assign(
        origin=LATE_ORIGIN).reset_index(drop=True)


def load_champion(settings: Settings, checked: Checked) -> Any:
    """The champion the drift check judged (its version, not the alias: it may have moved since)."""
    if checked.champion is None:
        return None
    registry.connect(settings.tracking_uri)
    return registry.load_version(settings.model_name, checked.champion)


def remember(path: Path, reference: pd.DataFrame, result: Labels, judged: set[str],
             retention_days: int = 0) -> dict[str, int]:
    """Add the window's labels to the label store (idempotent: keyed, so a re-run changes nothing).

    The store is seeded once with the champion's reference (`bootstrap`). The untouched holdout is
    stored as gold too: it is only kept out of *this* window's training draw. Quarantined feedback
    is stored with the champion's answer, which the draw trains on instead of the held label.
    Judged late labels (`judged`, their pending keys) land on their tickets' own keys with the rest
    (accepted or quarantined), and their pending rows go. Tickets past `retention_days` are forgotten.
    Priorities are stored with their rows; a row with only a priority is gold that adds its priority to the
    ticket's row (`labelstore.upsert`: it never replaces a topic). A store without any priority while the
    champion's reference has some (seeded under a champion without them) is said in the log, not mended.
    """
    train, quarantined = result.train, result.quarantined
    gold = pd.concat([train.loc[train["label_origin"].isin([GOLD, FIXED])], result.holdout], ignore_index=True)
    held = quarantined.assign(champion_topic=quarantined["suggested_topic"])

    def add(store: pd.DataFrame) -> pd.DataFrame:
        if not store["origin"].eq(labelstore.BOOTSTRAP).any():
            store = labelstore.upsert(store, labelstore.rows_from(reference, labelstore.BOOTSTRAP))
        store = labelstore.drop_keys(store, judged)
        for rows in (labelstore.rows_from(gold, labelstore.GOLD),
                     labelstore.rows_from(train.loc[train["label_origin"] == PSEUDO], labelstore.PSEUDO),
                     labelstore.rows_from(held, labelstore.GOLD, labelstore.QUARANTINED)):
            store = labelstore.upsert(store, rows)
        return labelstore.expire(store, retention_days, pd.Timestamp.now(tz="UTC"))

    store = labelstore.update(path, add)  # one run at a time: an overlapping run's rows are kept
    missing = labelstore.missing_priorities(store, reference)
    if missing:
        log.warning(kv("label_store_priorities", missing=missing))
    return labelstore.summary(store)
