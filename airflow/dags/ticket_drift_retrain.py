"""ticket_drift_retrain: Evidently drift check -> relabel -> PyCaret challenger, once a day.

collect_window -> check_drift -> decide -> relabel -> train_challenger -> report
                                       \\-> skip ----------------------------/

Wiring only: every task calls one function of `retrain.tasks.pipeline` (tested without Airflow), and
settings come from the environment (TICKET_AB_HOME, MLFLOW_TRACKING_URI, TICKET_AB_MODEL_NAME...).
Tasks that talk to MLflow retry with exponential backoff; the watermark and the aliases only move
at the end, so a failed run changes nothing and the next run sees the same tickets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import dag, get_current_context, task

from retrain.contracts.names import DAG_ID
from retrain.contracts.settings import get_settings
from retrain.tasks import pipeline

MLFLOW_RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=10)}


def _run_id() -> str:
    return get_current_context()["run_id"]


@dag(
    dag_id=DAG_ID,
    schedule=get_settings().pipeline.schedule,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ticket-ab", "retries": 0},
    tags=["ticket-ab", "drift", "retrain"],
    doc_md=__doc__,
)
def ticket_drift_retrain():
    @task
    def collect_window() -> dict:
        return pipeline.collect_window(get_settings(), _run_id())

    @task(**MLFLOW_RETRIES)
    def check_drift(collected: dict) -> dict:
        return pipeline.check_drift(get_settings(), collected)

    @task.branch
    def decide(checked: dict) -> str:
        return pipeline.choose_branch(checked)

    @task(task_id=pipeline.RELABEL_TASK)
    def relabel(collected: dict, checked: dict) -> dict:
        return pipeline.relabel_window(get_settings(), collected, checked)

    @task(**MLFLOW_RETRIES)
    def train_challenger(collected: dict, checked: dict, relabelled: dict) -> dict:
        context = get_current_context()
        key = pipeline.run_key(context.get("logical_date"), context["run_id"])
        return pipeline.train_challenger(get_settings(), collected, checked, relabelled, key=key)

    @task(trigger_rule="none_failed_min_one_success", **MLFLOW_RETRIES)
    def report(collected: dict, checked: dict) -> dict:
        return pipeline.report(get_settings(), collected, checked)

    collected = collect_window()
    checked = check_drift(collected)
    relabelled = relabel(collected, checked)
    trained = train_challenger(collected, checked, relabelled)
    skip = EmptyOperator(task_id=pipeline.SKIP_TASK)
    summary = report(collected, checked)
    decide(checked) >> [relabelled, skip]
    [trained, skip] >> summary


ticket_drift_retrain()
