"""Task 4, `relabel`: cleaned gold and confident pseudo-labels for training, a gold holdout, the review queue."""

from __future__ import annotations

import shutil
import time

import pandas as pd

from retrain.contracts.log import get_logger, kv
from retrain.contracts.settings import Settings
from retrain.ml.relabel import relabel, write_review_queue
from retrain.tasks.results import Checked, Collected, Relabelled

log = get_logger("dag")


def relabel_window(settings: Settings, collected: Collected, checked: Checked) -> Relabelled:
    """Label the window against the champion's reference; the agents' queue goes to reports/ and the run."""
    started = time.perf_counter()
    directory = collected.directory
    window = pd.read_parquet(collected.window_path)
    reference = pd.read_parquet(checked.reference_path)
    result = relabel(window, reference, settings.relabel, settings.seed)
    train_path, holdout_path = directory / "relabelled.parquet", directory / "holdout.parquet"
    result.train.to_parquet(train_path, index=False)
    result.holdout.to_parquet(holdout_path, index=False)
    review_path = write_review_queue(result.review, settings.reports_dir / "review_queue.csv")
    shutil.copyfile(review_path, directory / "review_queue.csv")
    relabelled = Relabelled(train_path=str(train_path), holdout_path=str(holdout_path), review_path=str(review_path),
                            stats=result.stats)
    relabelled.save(directory)
    s = result.stats
    log.info(kv("relabel", run_id=collected.run_id, gold=s["gold"], gold_fixed=s["gold_fixed"],
                gold_disputed=s["gold_disputed"], gold_health=s["gold_health"], holdout=s["holdout"],
                pseudo=s["pseudo"], pseudo_threshold=s["pseudo_threshold"], pseudo_precision=s["pseudo_precision"],
                review=s["review"], seconds=time.perf_counter() - started))
    return relabelled
