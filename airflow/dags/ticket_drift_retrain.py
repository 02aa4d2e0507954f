"""ticket_drift_retrain: Evidently drift check -> relabel -> PyCaret challenger, when tickets arrive.

collect_window -> check_drift -> decide -> relabel -> train_challenger -> report
                                       \\-> skip ----------------------------/
collect_window -> compact_logs (closed log days to Parquet, before its retention) -> report

Scheduled by the request-log asset, which `ticket_log_watch` emits once TICKET_AB_MIN_WINDOW new
tickets arrived, or else by time (TICKET_AB_SCHEDULE): `AssetOrTimeSchedule`.

Wiring only: every task calls one function of `retrain.tasks` (tested without Airflow) and hands its
typed result (`retrain.tasks.results`) to the next task through XCom as it is; settings come from
the environment (TICKET_AB_HOME, MLFLOW_TRACKING_URI, TICKET_AB_MODEL_NAME...). Tasks that talk to
MLflow retry with exponential backoff; the watermark and the aliases only move at the end, so a
failed run changes nothing and the next run sees the same tickets.

The task modules import MLflow, Evidently, cleanlab and PyCaret (about 7 s); Airflow's DAG
processor re-parses this file every few minutes, so (as Airflow's best practices ask) they are
imported inside the tasks, and the top level imports only the light contracts and result types.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from retrain.tasks.results import Checked, Collected, Relabelled, Reported, Trained
from retrain.tasks.runs import DAG_DEFAULTS, run_key
from ticket_ab.names import DAG_ID, RELABEL_TASK, REQUEST_LOG_ASSET, SKIP_TASK
from ticket_ab.settings import get_settings

MLFLOW_RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=10)}


@dag(
    dag_id=DAG_ID,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(get_settings().pipeline.schedule, timezone="UTC"),
                                 assets=[Asset(REQUEST_LOG_ASSET)]),
    tags=["ticket-ab", "drift", "retrain"],
    **DAG_DEFAULTS,
    doc_md=__doc__,
)
def ticket_drift_retrain():
    @task
    def collect_window() -> Collected:
        from retrain.tasks import collect

        return collect.collect_window(get_settings(), get_current_context()["run_id"])

    @task(**MLFLOW_RETRIES)
    def check_drift(collected: Collected) -> Checked:
        from retrain.tasks import check

        return check.check_drift(get_settings(), collected)

    @task.branch
    def decide(checked: Checked) -> str:
        return checked.branch()

    @task(task_id=RELABEL_TASK)
    def relabel_window(collected: Collected, checked: Checked) -> Relabelled:
        from retrain.tasks import relabel

        return relabel.relabel_window(get_settings(), collected, checked)

    @task(**MLFLOW_RETRIES)
    def train_challenger(collected: Collected, checked: Checked, relabelled: Relabelled) -> Trained:
        from retrain.tasks import train

        context = get_current_context()
        return train.train_challenger(get_settings(), collected, checked, relabelled,
                                      key=run_key(context.get("logical_date"), context["run_id"]))

    @task(task_id="report", trigger_rule="none_failed_min_one_success", **MLFLOW_RETRIES)
    def write_report(collected: Collected, checked: Checked, relabelled: Relabelled | None,
                     trained: Trained | None) -> Reported:
        from retrain.tasks import report

        return report.report(get_settings(), collected, checked, relabelled, trained)

    @task
    def compact_logs() -> dict[str, int]:
        from retrain.tasks import compact

        return compact.compact_logs(get_settings())

    collected = collect_window()
    checked = check_drift(collected)
    relabelled = relabel_window(collected, checked)
    trained = train_challenger(collected, checked, relabelled)
    skip = EmptyOperator(task_id=SKIP_TASK)
    summary = write_report(collected, checked, relabelled, trained)
    decide(checked) >> [relabelled, skip]
    [trained, skip] >> summary
    collected >> compact_logs() >> summary


ticket_drift_retrain()
