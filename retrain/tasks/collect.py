"""Task 1, `collect_window`: the tickets since the watermark, with guarded feedback, saved for the run.

What is saved (`window.parquet`) is what the later tasks need of the window, not all of it: every labelled
ticket (relabelling keeps them all), the drift check's seeded sample (TICKET_AB_WINDOW_SAMPLE_ROWS,
`drift_sample` True) and the incoming files' tickets. The window's counts are the stats' (taken over the
whole window), never the file's rows.

Late feedback (for tickets of earlier windows, kept in the label store) goes into the label store
as pending here, on every run, whether or not this run relabels: it is judged at the next
quarantine (`relabel`) and never trained on before. Keyed, so a re-run of the same window adds
nothing twice."""

from __future__ import annotations

import time
from dataclasses import asdict

from retrain.adapters import labelstore
from retrain.tasks import window as win
from retrain.tasks import windowscan
from retrain.tasks.results import Collected
from retrain.tasks.runs import run_dir
from ticket_ab.log import get_logger, kv
from ticket_ab.schema import TEXT
from ticket_ab.settings import Settings

STRING_COLUMNS = ("request_id", "ticket_id", "customer_id", "origin", TEXT, "served_topic", "label", "label_source",
                  "label_priority")

log = get_logger("dag")


def collect_window(settings: Settings, run_id: str) -> Collected:
    """New tickets since the watermark, joined with guarded feedback, saved as the run's window.

    The watermark is only read here; `report` commits `next_watermark` when the window is done.
    """
    started = time.perf_counter()
    directory = run_dir(settings, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    watermark = win.load_watermark(win.watermark_path(settings.airflow_dir))
    store_path = labelstore.path_for(settings.data_dir)
    store = labelstore.load(store_path)
    window = win.collect(settings.logs_dir, settings.incoming_dir, watermark, settings.feedback, settings.log.settle_s,
                         stored=set(store[labelstore.KEY]), sample=windowscan.sampling(settings))
    path = directory / "window.parquet"
    window.frame.astype({column: "string" for column in STRING_COLUMNS}).to_parquet(path, index=False)
    late_path = directory / "late_feedback.parquet"
    window.late.astype("string").to_parquet(late_path, index=False)
    if not window.late.empty:  # under the store's lock: a concurrent run's rows are kept
        store = labelstore.update(store_path, lambda current: labelstore.add_pending(current, window.late)[0])
    stats = {**window.stats, "feedback_late_pending": int(len(labelstore.pending(store)))}
    summary = win.summarize(stats)
    log.info(kv("collect_window", run_id=run_id, rows=stats["rows"], labelled=stats["labelled"],
                malformed=stats["malformed"], feedback_refused=stats["feedback_refused"], saved=len(window.frame),
                seconds=time.perf_counter() - started, summary=summary))
    return Collected(run_id=run_id, run_dir=str(directory), window_path=str(path), rows=stats["rows"],
                     labelled=stats["labelled"], stats=stats, summary=summary,
                     next_watermark=asdict(window.next_watermark), late_path=str(late_path))
