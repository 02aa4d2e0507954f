"""ticket_experiment: every few minutes, and whenever new request-log partitions arrive, look at the running
A/B experiment and take at most one action: hold, ramp, promote, stop, or roll back a watched champion.

    decide_and_act

The logic lives in the analysis room (`analysis.autopilot`: the same analysis as `analysis.py`, the
policy in `analysis.rollout`, thresholds in TICKET_AB_ROLLOUT_* and TICKET_AB_TEST_*). Every action
is idempotent, so the task retries: a retry after a crash finishes what the first attempt journalled.
"""

from __future__ import annotations

import json
from datetime import timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from retrain.tasks.runs import DAG_DEFAULTS
from ticket_ab.names import EXPERIMENT_DAG_ID, REQUEST_LOG_ASSET
from ticket_ab.settings import get_settings

EVERY = get_settings().rollout.check_minutes


@dag(
    dag_id=EXPERIMENT_DAG_ID,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(f"*/{EVERY} * * * *", timezone="UTC"),
                                 assets=[Asset(REQUEST_LOG_ASSET)]),
    tags=["ticket-ab", "experiment", "rollout"],
    **{**DAG_DEFAULTS, "default_args": {**DAG_DEFAULTS["default_args"], "retries": 2,
                                        "retry_delay": timedelta(seconds=30)}},
    doc_md=__doc__,
)
def ticket_experiment():
    @task
    def decide_and_act() -> dict:
        from analysis import autopilot

        run_id = get_current_context()["run_id"]
        outcome = autopilot.run_once(get_settings(), who=f"experiment DAG ({run_id})")
        print("rollout_outcome " + json.dumps(outcome.as_dict()))  # one line `make demo` reads
        return outcome.as_dict()

    decide_and_act()


ticket_experiment()
