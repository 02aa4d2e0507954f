"""The registry's accounts: one per role, each with the least permission MLflow can express for it.

MLflow's basic-auth runs with `default_permission = NO_PERMISSIONS`, so an account can do only what
it is granted here, on the two resources the loop uses: the served registered model and the
training experiment (whose artifact store holds the models' files: downloading a version needs READ
on it too). The registry's auth app (ops.stack.registry_rules) draws the lines MLflow cannot: EDIT
sets only the `challenger` alias, and a version's artifact digest is never rewritten.

The one-shot `registry-init` (ops.stack.registry_init) creates them and grants exactly these
permissions. Each process is given one account's credentials in its own environment (MLflow's client
reads MLFLOW_TRACKING_USERNAME/PASSWORD).

The Airflow process that runs the tasks (the scheduler with the LocalExecutor, the Celery worker) runs
those of both DAGs, and a process has one identity: the retraining DAG's tasks register versions and
set `challenger` (EDIT), the experiment DAG's promote, stop (remove `challenger`) and roll back (MANAGE
on the model) and log their A/B report runs (EDIT on the experiment). So that process acts as
`autopilot`, which is exactly the union; `promoter` could not log those runs (READ on the experiment),
and `pipeline` stays the EDIT-only role for anything that only offers challengers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    name: str
    model: str  # permission on the served registered model
    experiment: str  # permission on the training experiment (its runs and artifacts)
    used_by: str

    @property
    def password_variable(self) -> str:
        """Where `registry-init` finds this account's password (in its own environment only)."""
        return f"REGISTRY_{self.name.upper()}_PASSWORD"


ROUTER = Account("router", "READ", "READ", "the router replicas: read the aliases, download the served versions")
PIPELINE = Account("pipeline", "EDIT", "EDIT", "a process that only offers challengers (retraining outside the stack's "
                   "Airflow, by hand or from CI): log runs, register versions, set `challenger`, never the champion")
AUTOPILOT = Account("autopilot", "MANAGE", "EDIT", "the Airflow process that runs the DAGs' tasks: the retraining "
                    "DAG's (log runs, register versions, set `challenger`) and the experiment DAG's (promote, stop, "
                    "roll back; log the A/B report runs)")
PROMOTER = Account("promoter", "MANAGE", "READ", "promotion (`analysis.py --promote`, `ticket-ab promote/rollback`): "
                   "move `champion` and `previous`, remove aliases, score the versions it compares")
OPERATOR = Account("operator", "MANAGE", "MANAGE", "people (the UI, `ticket-ab` by hand) and the one-shot bootstrap "
                   "of the first champion")
ACCOUNTS = (ROUTER, PIPELINE, AUTOPILOT, PROMOTER, OPERATOR)
ADMIN = "admin"  # MLflow's admin (unrestricted): used only by `registry-init` to set the accounts up
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def credentials(account: str, password: str) -> dict[str, str]:
    """The environment that makes MLflow's client act as `account` (a program's own `environment=`)."""
    return dict(zip(CREDENTIALS, (account, password), strict=True))
