"""Task 4, `relabel`: quarantine suspicious feedback, hold out untouched gold, clean the rest, pseudo-label
what is safe, queue the rest for agents, and remember every accepted label in the label store."""

from __future__ import annotations

import shutil
import time
from typing import Any

import pandas as pd

from retrain.adapters import labelstore
from retrain.ml.relabel import FIXED, GOLD, PSEUDO, relabel, write_review_queue
from retrain.tasks.results import Checked, Collected, Relabelled
from ticket_ab import registry
from ticket_ab.log import get_logger, kv
from ticket_ab.settings import Settings

log = get_logger("dag")


def relabel_window(settings: Settings, collected: Collected, checked: Checked) -> Relabelled:
    """Label the window against the champion; the agents' queue goes to reports/ and the run."""
    started = time.perf_counter()
    directory = collected.directory
    window = pd.read_parquet(collected.window_path)
    reference = pd.read_parquet(checked.reference_path)
    result = relabel(window, reference, settings.relabel, settings.seed, champion=load_champion(settings, checked),
                     guards=settings.feedback)
    train_path, holdout_path = directory / "relabelled.parquet", directory / "holdout.parquet"
    result.train.to_parquet(train_path, index=False)
    result.holdout.to_parquet(holdout_path, index=False)
    result.quarantined.drop(columns=["label"], errors="ignore").to_parquet(directory / "quarantined.parquet",
                                                                          index=False)
    review_path = write_review_queue(result.review, settings.reports_dir / "review_queue.csv")
    shutil.copyfile(review_path, directory / "review_queue.csv")
    store = remember(settings, collected, reference, result.train, result.holdout, result.quarantined)
    relabelled = Relabelled(train_path=str(train_path), holdout_path=str(holdout_path), review_path=str(review_path),
                            stats=result.stats, patterns=[str(p) for p in result.patterns], store=store)
    s = result.stats
    log.info(kv("relabel", run_id=collected.run_id, gold=s["gold"], gold_fixed=s["gold_fixed"],
                gold_disputed=s["gold_disputed"], quarantined=s["quarantined"], patterns=";".join(s["patterns"]),
                holdout=s["holdout"], pseudo=s["pseudo"], pseudo_threshold=s["pseudo_threshold"],
                pseudo_verified=s["pseudo_verified"], pseudo_precision=s["pseudo_precision"], review=s["review"],
                store_rows=store.get("rows"), seconds=time.perf_counter() - started))
    return relabelled


def load_champion(settings: Settings, checked: Checked) -> Any:
    """The champion the drift check judged (its version, not the alias: it may have moved since)."""
    if checked.champion is None:
        return None
    registry.connect(settings.tracking_uri)
    return registry.load_version(settings.model_name, checked.champion)


def remember(settings: Settings, collected: Collected, reference: pd.DataFrame, train: pd.DataFrame,
             holdout: pd.DataFrame, quarantined: pd.DataFrame) -> dict[str, int]:
    """Add the window's labels to the label store (idempotent: keyed, so a re-run changes nothing).

    The store is seeded once with the champion's reference (`bootstrap`). The untouched holdout is
    stored as gold too: it is only kept out of *this* window's training draw.
    """
    path = labelstore.path_for(settings.data_dir)
    store = labelstore.load(path)
    if not store["origin"].eq(labelstore.BOOTSTRAP).any():
        store = labelstore.upsert(store, labelstore.rows_from(reference, labelstore.BOOTSTRAP))
    gold = pd.concat([train.loc[train["label_origin"].isin([GOLD, FIXED])], holdout], ignore_index=True)
    for rows in (labelstore.rows_from(gold, labelstore.GOLD),
                 labelstore.rows_from(train.loc[train["label_origin"] == PSEUDO], labelstore.PSEUDO),
                 labelstore.rows_from(quarantined, labelstore.GOLD, labelstore.QUARANTINED)):
        store = labelstore.upsert(store, rows)
    late = 0
    if collected.late_path:
        store, late = labelstore.apply_late(store, pd.read_parquet(collected.late_path))
    labelstore.save(path, store)
    return {**labelstore.summary(store), "late_feedback_joined": late}
