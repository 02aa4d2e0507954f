"""`GET /openapi.json`: the OpenAPI 3.1 document, built per app from the very models the app validates with.

A view declares what it takes and answers with `documented(...)`; `document` walks the app's
routes and assembles the declared operations, their request body from the app's contract (so a
limit set in the settings shows as the schema's `maxLength`/`maxItems`) and their answers from
router.responses. The JSON schemas are pydantic's own (`models_json_schema`); only the few lines
of OpenAPI around them are written here. Undeclared routes (/metrics, /ping, ...) are not listed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal, TypeVar

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Rule

from router.contract import Contract
from router.responses import Error

EXTENSION = "ticket_ab.openapi"
BEARER = "bearer"
TITLE = "ticket-ab router"
VERSION = "1"
_ATTRIBUTE = "openapi_operation"
_REF = "#/components/schemas/{model}"
_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")  # werkzeug's <converter:name>

Body = Literal["predict", "feedback", "config", "invocations", "infer"]  # a Contract field
View = TypeVar("View", bound=Callable[..., Any])
AUTH_OPTIONAL = "optional"


@dataclass(frozen=True)
class Operation:
    """What one view takes and answers."""

    ok: Mapping[int, type[BaseModel]]
    errors: tuple[int, ...]
    body: Body | None
    secured: bool | str  # True: a bearer token is required; AUTH_OPTIONAL: taken, and the router may serve without


def documented(ok: Mapping[int, type[BaseModel]], *errors: int, body: Body | None = None,
               secured: bool | str = False) -> Callable[[View], View]:
    """List the view in the document: its answers `ok`, the error statuses it gives, the contract's
    model of its JSON body, and whether it takes a bearer token (AUTH_OPTIONAL: the scoring endpoints,
    whose token a router may not require, see router.clients)."""

    def mark(view: View) -> View:
        setattr(view, _ATTRIBUTE, Operation(dict(ok), errors, body, secured))
        return view

    return mark


def document(app: Flask, contract: Contract) -> dict[str, Any]:
    """The OpenAPI document of the app's documented routes under its contract."""
    routes = [(rule, view, operation) for rule in app.url_map.iter_rules()
              if (operation := getattr(view := app.view_functions[rule.endpoint], _ATTRIBUTE, None))]
    models = {id(model): model for _, _, operation in routes for model in _models(operation, contract)}
    refs, definitions = models_json_schema([(model, "validation") for model in models.values()], ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for rule, view, operation in routes:
        path = _PARAMETER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                rule, method, view, operation, lambda model: refs[(model, "validation")], contract)
    return {"openapi": "3.1.0", "info": {"title": TITLE, "version": VERSION}, "paths": paths,
            "components": {"schemas": definitions.get("$defs", {}),
                           "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer"}}}}


def _models(operation: Operation, contract: Contract) -> list[type[BaseModel]]:
    body = [getattr(contract, operation.body)] if operation.body else []
    return [*body, *operation.ok.values(), *([Error] if operation.errors else [])]


def _operation(rule: Rule, method: str, view: Callable[..., Any], operation: Operation,
               ref: Callable[[type[BaseModel]], dict[str, Any]], contract: Contract) -> dict[str, Any]:
    """One operation: summary and description from the view's docstring, parameters, body, answers."""
    summary, *details = [" ".join(part.split()) for part in inspect.cleandoc(view.__doc__ or "").split("\n\n")]
    answers = {**{status: model for status, model in operation.ok.items()},
               **{status: Error for status in operation.errors}}
    out: dict[str, Any] = {
        "summary": summary, "description": "\n\n".join(details),
        "operationId": f"{method.lower()}_{rule.endpoint.replace('.', '_')}",
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                       for name in sorted(rule.arguments)],
        "responses": {str(status): {"description": HTTPStatus(status).phrase,
                                    "content": {"application/json": {"schema": ref(model)}}}
                      for status, model in sorted(answers.items())},
    }
    if operation.body:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": ref(getattr(contract, operation.body))}}}
    if operation.secured:
        out["security"] = [{BEARER: []}, *([{}] if operation.secured == AUTH_OPTIONAL else [])]
    return out
