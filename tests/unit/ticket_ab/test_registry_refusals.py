"""An authenticated registry's 401/403 is a credential problem, said as one: never mistaken for 'no such alias'."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, UNAUTHENTICATED

from ticket_ab import registry
from ticket_ab.names import CHALLENGER, CHAMPION


class Answering:
    """A registry client whose every call fails with one MLflow error code."""

    def __init__(self, code: int) -> None:
        self.code = code

    def _fail(self, *args: object) -> None:
        raise MlflowException("refused (test)", error_code=self.code)

    get_model_version_by_alias = set_registered_model_alias = delete_registered_model_alias = _fail


def test_a_missing_alias_is_none_but_a_refused_read_names_the_account(monkeypatch):
    assert registry.version_for(Answering(RESOURCE_DOES_NOT_EXIST), "m", CHAMPION) is None
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "router")
    with pytest.raises(registry.RegistryRefused, match="account 'router' lacks the permission .*READ"):
        registry.version_for(Answering(PERMISSION_DENIED), "m", CHAMPION)


def test_promotion_without_credentials_says_so_instead_of_finding_no_challenger(monkeypatch):
    monkeypatch.setattr(registry, "account", lambda: None)  # neither the variable nor ~/.mlflow/credentials
    with pytest.raises(registry.RegistryRefused, match="no credentials were given; set MLFLOW_TRACKING_USERNAME"):
        registry.promote(Answering(UNAUTHENTICATED), "m", why="test")


def test_a_refused_alias_move_names_the_permission_it_needs(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "pipeline")
    client = Answering(PERMISSION_DENIED)
    client.get_model_version_by_alias = lambda name, alias: None
    with pytest.raises(registry.RegistryRefused, match=f"other than '{CHALLENGER}'.* needs MANAGE"):
        registry.move_alias(client, "m", CHAMPION, "3", why="test")
