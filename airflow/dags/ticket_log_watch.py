"""ticket_log_watch: every few minutes, emit the request-log asset once a window's worth of tickets arrived.

    count_new_tickets --(asset ticket_ab_request_log)--> ticket_drift_retrain

`ticket_drift_retrain` is scheduled by that asset or by its time schedule (`AssetOrTimeSchedule`).
The task skips (and a skipped task emits no asset event) while fewer than TICKET_AB_MIN_WINDOW new
tickets arrived since the watermark, or while a retrain run is queued or running: that run will
read these tickets, and an event now would queue a second run over an emptied window.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from retrain.tasks.runs import DAG_DEFAULTS
from retrain.tasks.watch import count_new_tickets
from ticket_ab.names import DAG_ID, REQUEST_LOG_ASSET, WATCH_DAG_ID
from ticket_ab.settings import get_settings

ACTIVE = ["queued", "running"]


@dag(
    dag_id=WATCH_DAG_ID,
    schedule=timedelta(seconds=get_settings().pipeline.watch_interval_s),
    tags=["ticket-ab", "drift", "watch"],
    **DAG_DEFAULTS,
    doc_md=__doc__,
)
def ticket_log_watch():
    @task(outlets=[Asset(REQUEST_LOG_ASSET)])
    def count_new() -> dict:
        if get_current_context()["ti"].get_dr_count(dag_id=DAG_ID, states=ACTIVE):
            raise AirflowSkipException(f"a {DAG_ID} run is queued or running: it reads these tickets")
        watched = count_new_tickets(get_settings())
        if not watched.due:
            raise AirflowSkipException(watched.reason())
        print(watched.reason())
        return watched.to_dict()

    count_new()


ticket_log_watch()
