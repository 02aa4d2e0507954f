"""The registry's auth app: MLflow's basic-auth, with our rules (ops.stack.registry_rules) on top.

`mlflow server --app-name ticket-ab-auth` loads `create_app` through MLflow's app plugin entry
point (`mlflow.app` in pyproject.toml). It is MLflow's own `mlflow.server.auth.create_app`, which
authenticates every request and enforces the per-model and per-experiment permissions, plus one
`before_request` hook registered after MLflow's, so it only ever sees requests MLflow already
authenticated and authorised. The hook reads the request exactly as MLflow's handler will (its
request parser) and answers 403 with the rule's reason when a rule refuses.

Imported only inside the MLflow server process: importing MLflow's auth module reads its config.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, make_response, request
from mlflow.exceptions import MlflowException
from mlflow.protos.model_registry_pb2 import (
    CreateRegisteredModel,
    DeleteModelVersionTag,
    ModelRegistryService,
    RenameRegisteredModel,
    SetModelVersionTag,
    SetRegisteredModelAlias,
)
from mlflow.protos.service_pb2 import CreateExperiment, MlflowService
from mlflow.server import app as mlflow_app
from mlflow.server import auth
from mlflow.server.handlers import (
    _get_model_registry_store,
    _get_request_message,
    _get_tracking_store,
    catch_mlflow_exception,
    get_service_endpoints,
)

from ops.stack.registry_rules import (
    CREATE_EXPERIMENT,
    CREATE_MODEL,
    CREATES,
    DELETE_VERSION_TAG,
    RENAME,
    SET_ALIAS,
    SET_VERSION_TAG,
    refusal,
)

OPERATIONS: dict[type, str] = {SetRegisteredModelAlias: SET_ALIAS, RenameRegisteredModel: RENAME,
                               SetModelVersionTag: SET_VERSION_TAG, DeleteModelVersionTag: DELETE_VERSION_TAG,
                               CreateRegisteredModel: CREATE_MODEL, CreateExperiment: CREATE_EXPERIMENT}
# (path, method) -> (request class, operation), for every REST path MLflow serves the operation on.
ROUTES = {(path, method): (cls, OPERATIONS[cls])
          for service in (ModelRegistryService, MlflowService)
          for path, cls, methods in get_service_endpoints(service, lambda c: c) if cls in OPERATIONS
          for method in methods}


def create_app(app: Flask = mlflow_app) -> Any:
    """MLflow's basic-auth app (Flask, or the FastAPI app around it under uvicorn) with our rules added."""
    served = auth.create_app(app)
    app.before_request(apply_rules)
    return served


@catch_mlflow_exception  # as MLflow's own hook: a malformed request is a 400, never a 500
def apply_rules() -> Response | None:
    """403 with the reason when a rule refuses this request; None lets it through to MLflow's handler."""
    route = ROUTES.get((request.path, request.method))
    if route is None or auth.sender_is_admin():
        return None
    cls, operation = route
    message = _get_request_message(cls())
    can_manage = operation in (SET_ALIAS, RENAME) and auth.validate_can_manage_registered_model()
    exists = operation in CREATES and _exists(operation, message.name)
    reason = refusal(operation, alias=getattr(message, "alias", ""), key=getattr(message, "key", ""),
                     can_manage=can_manage, exists=exists)
    if reason is None:
        return None
    return make_response({"error_code": "PERMISSION_DENIED", "message": f"Permission denied: {reason}"}, 403)


def _exists(operation: str, name: str) -> bool:
    """Whether the registered model (or experiment) a create names is already there."""
    if operation == CREATE_EXPERIMENT:
        return _get_tracking_store().get_experiment_by_name(name) is not None
    try:
        _get_model_registry_store().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True
