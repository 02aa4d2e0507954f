"""ticket_drift_retrain: Evidently drift check -> relabel -> PyCaret challenger, when tickets arrive.

collect_window -> check_drift -> decide -> relabel -> train_challenger -> report
                                       \\-> skip ----------------------------/

Scheduled by the request-log asset, which `ticket_log_watch` emits once TICKET_AB_MIN_WINDOW new
tickets arrived, or else by time (TICKET_AB_SCHEDULE): `AssetOrTimeSchedule`.

Wiring only: every task calls one function of `retrain.tasks` (tested without Airflow) and passes
its typed result on through XCom as a plain dict (`to_dict` / `from_dict`); settings come from
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

from retrain.tasks.results import Checked, Collected, Relabelled
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
    def collect_window() -> dict:
        from retrain.tasks import collect

        return collect.collect_window(get_settings(), get_current_context()["run_id"]).to_dict()

    @task(**MLFLOW_RETRIES)
    def check_drift(collected: dict) -> dict:
        from retrain.tasks import check

        return check.check_drift(get_settings(), Collected.from_dict(collected)).to_dict()

    @task.branch
    def decide(checked: dict) -> str:
        return Checked.from_dict(checked).branch()

    @task(task_id=RELABEL_TASK)
    def relabel_window(collected: dict, checked: dict) -> dict:
        from retrain.tasks import relabel

        return relabel.relabel_window(get_settings(), Collected.from_dict(collected),
                                      Checked.from_dict(checked)).to_dict()

    @task(**MLFLOW_RETRIES)
    def train_challenger(collected: dict, checked: dict, relabelled: dict) -> dict:
        from retrain.tasks import train

        context = get_current_context()
        return train.train_challenger(get_settings(), Collected.from_dict(collected), Checked.from_dict(checked),
                                      Relabelled.from_dict(relabelled),
                                      key=run_key(context.get("logical_date"), context["run_id"])).to_dict()

    @task(task_id="report", trigger_rule="none_failed_min_one_success", **MLFLOW_RETRIES)
    def write_report(collected: dict, checked: dict) -> dict:
        from retrain.tasks import report

        return report.report(get_settings(), Collected.from_dict(collected), Checked.from_dict(checked)).to_dict()

    collected = collect_window()
    checked = check_drift(collected)
    relabelled = relabel_window(collected, checked)
    trained = train_challenger(collected, checked, relabelled)
    skip = EmptyOperator(task_id=SKIP_TASK)
    summary = write_report(collected, checked)
    decide(checked) >> [relabelled, skip]
    [trained, skip] >> summary


ticket_drift_retrain()
