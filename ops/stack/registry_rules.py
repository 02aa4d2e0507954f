"""What MLflow's permissions cannot say about our registry, as plain rules (pure: the auth app applies them).

MLflow grants per registered model: EDIT may set any alias and rename the model, and any writer of
a version's tags may rewrite them. Our roles need finer lines, so the registry's auth app
(ops.stack.registry_auth) asks these rules after MLflow's own checks passed:

- an alias other than `challenger` (`champion`, `previous`) is set only with MANAGE on the model, so
  the retraining pipeline (EDIT) can offer a challenger but never make it the champion: every
  champion move goes through promotion (MANAGE);
- renaming a model needs MANAGE: a rename would free the name for a new model, owned by whoever
  creates it;
- the artifact digest tag is written once, by the registration call itself, and never changed or
  removed afterwards, so a version's files cannot be swapped together with their record;
- only the admin creates registered models and experiments (`registry-init` creates ours): without
  MLflow's workspaces any account may create one and would own it, so a role account could fill the
  registry with objects of its own. Asking to create one that exists is let through (MLflow answers
  that it exists, which is how `mlflow.register_model` finds an existing model).

MLflow admins (the stack's `admin`, used only to set the accounts up) are not restricted.
"""

from __future__ import annotations

from ticket_ab.names import CHALLENGER
from ticket_ab.registry import ARTIFACT_DIGEST_TAG

SET_ALIAS, RENAME, SET_VERSION_TAG, DELETE_VERSION_TAG = "set_alias", "rename", "set_version_tag", "delete_version_tag"
CREATE_MODEL, CREATE_EXPERIMENT = "create_model", "create_experiment"
CREATES = (CREATE_MODEL, CREATE_EXPERIMENT)


def refusal(operation: str, *, alias: str = "", key: str = "", can_manage: bool = False,
            exists: bool = False) -> str | None:
    """Why a non-admin may not do `operation` with these fields (None: the rules allow it)."""
    if operation in CREATES and not exists:
        what = "registered models" if operation == CREATE_MODEL else "experiments"
        return f"only the registry's admin creates {what}; the accounts work in those it created for them"
    if operation == SET_ALIAS and alias != CHALLENGER and not can_manage:
        return (f"setting alias {alias!r} needs MANAGE on the registered model: with EDIT (the retraining "
                f"pipeline) only {CHALLENGER!r} may be set; the champion moves by promotion")
    if operation == RENAME and not can_manage:
        return "renaming a registered model needs MANAGE on it"
    if operation in (SET_VERSION_TAG, DELETE_VERSION_TAG) and key == ARTIFACT_DIGEST_TAG:
        return f"tag {ARTIFACT_DIGEST_TAG!r} is written once, by the registration of the version, and never changed"
    return None
