"""The lines MLflow's permissions cannot draw, which the registry's auth app adds (the real server applies
them in tests/integration/stack: here, the rules themselves and what reaches the processes)."""

from __future__ import annotations

import pytest

from ops.env import inherited
from ops.stack.accounts import ACCOUNTS, AUTOPILOT, PIPELINE, PROMOTER, ROUTER
from ops.stack.registry_rules import (
    CREATE_EXPERIMENT,
    CREATE_MODEL,
    DELETE_VERSION_TAG,
    RENAME,
    SET_ALIAS,
    SET_VERSION_TAG,
    refusal,
)
from ticket_ab.names import CHALLENGER, CHAMPION, PREVIOUS
from ticket_ab.registry import ARTIFACT_DIGEST_TAG
from ticket_ab.settings import get_settings


def test_edit_may_set_only_the_challenger_and_manage_may_set_every_alias():
    assert refusal(SET_ALIAS, alias=CHALLENGER) is None
    for alias in (CHAMPION, PREVIOUS):
        assert "needs MANAGE" in refusal(SET_ALIAS, alias=alias)
        assert refusal(SET_ALIAS, alias=alias, can_manage=True) is None


def test_renaming_the_model_needs_manage():
    assert "needs MANAGE" in refusal(RENAME)
    assert refusal(RENAME, can_manage=True) is None


@pytest.mark.parametrize("operation", [SET_VERSION_TAG, DELETE_VERSION_TAG])
def test_the_artifact_digest_of_a_version_is_never_rewritten_whatever_the_permission(operation):
    assert "written once" in refusal(operation, key=ARTIFACT_DIGEST_TAG, can_manage=True)
    assert refusal(operation, key="validation_status") is None


def test_each_role_has_the_least_permission_its_job_needs():
    grants = {account.name: (account.model, account.experiment) for account in ACCOUNTS}
    assert grants[ROUTER.name] == ("READ", "READ")  # aliases, versions, and their files (in the experiment)
    assert grants[PIPELINE.name] == ("EDIT", "EDIT")  # registers versions, logs runs; the rules limit its aliases
    assert grants[PROMOTER.name] == ("MANAGE", "READ")  # moves and removes aliases; scores the versions it compares
    # The task runner runs both DAGs: registers and offers challengers, promotes, stops, rolls back, logs A/B runs.
    assert grants[AUTOPILOT.name] == ("MANAGE", "EDIT")
    assert len({account.password_variable for account in ACCOUNTS}) == len(ACCOUNTS)


def test_a_launchers_own_registry_credentials_never_reach_what_it_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "operator")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "operator-secret-password")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "admin-secret-password")
    monkeypatch.setenv("REGISTRY_ROUTER_PASSWORD", "router-secret-password")
    env = inherited(get_settings(home=tmp_path))
    assert not [v for v in env.values() if v.endswith("secret-password")]
    assert "MLFLOW_TRACKING_USERNAME" not in env


@pytest.mark.parametrize("operation", [CREATE_MODEL, CREATE_EXPERIMENT])
def test_only_the_admin_creates_models_and_experiments_but_a_create_of_an_existing_one_is_answered(operation):
    assert "only the registry's admin creates" in refusal(operation, can_manage=True)
    assert refusal(operation, exists=True) is None  # MLflow answers ALREADY_EXISTS: register_model relies on it
