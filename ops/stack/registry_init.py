"""`registry-init`: the registry's accounts (ops.stack.accounts), set up as the MLflow admin.

`make stack` and compose run `python -m ops.stack.registry_init` once MLflow answers and before
anything else uses the registry. It creates the training experiment and the registered model as the
admin, so no role account owns them (MLflow gives an object's creator MANAGE on it), creates each
account or sets its password (a changed secret is a rotation), and grants exactly the account's
permissions on both. Run again on every `up`, it changes only what differs.
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client

from ops.stack.accounts import ACCOUNTS
from ticket_ab import registry
from ticket_ab.settings import Settings, get_settings

MODEL, EXPERIMENT = "registered_model", "experiment"  # MLflow's resource types


def _ensure_user(auth, name: str, password: str) -> str:
    try:
        auth.get_user(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(name, password)
        return "created"
    auth.update_user_password(name, password)
    return "password set"


def _ensure_grant(auth, name: str, resource: str, resource_id: str, permission: str) -> None:
    """Exactly `permission` for `name` on one resource (a grant cannot be updated in place: revoke, grant)."""
    if auth.get_user_permission(name, resource, resource_id).permission == permission:
        return
    try:
        auth.revoke_user_permission(name, resource, resource_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    auth.grant_user_permission(name, resource, resource_id, permission)


def provision(settings: Settings, passwords: dict[str, str]) -> list[str]:
    """As the admin (this process's MLflow credentials): the experiment, the model, every account; one line each."""
    client = registry.connect(settings.tracking_uri)
    experiment_id = registry.ensure_experiment(client, settings.experiment)
    registry.ensure_registered_model(client, settings.model_name)
    auth = get_app_client("basic-auth", tracking_uri=settings.tracking_uri)
    done = []
    for account in ACCOUNTS:
        state = _ensure_user(auth, account.name, passwords[account.name])
        _ensure_grant(auth, account.name, MODEL, settings.model_name, account.model)
        _ensure_grant(auth, account.name, EXPERIMENT, experiment_id, account.experiment)
        done.append(f"{account.name}: {state}; {account.model} on model {settings.model_name!r}, "
                    f"{account.experiment} on experiment {settings.experiment!r}")
    return done


def main() -> int:
    """`registry-init`: the accounts from this program's environment (their passwords, the admin's credentials)."""
    missing = [a.password_variable for a in ACCOUNTS if not os.environ.get(a.password_variable)]
    if missing:
        print(f"error: registry-init needs {', '.join(missing)} in its environment", file=sys.stderr)
        return 2
    try:
        lines = provision(get_settings(), {a.name: os.environ[a.password_variable] for a in ACCOUNTS})
    except registry.FAILURES as exc:
        print(f"error: setting up the registry's accounts failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
