"""The A/B router: a Flask app that serves champion vs challenger from the MLflow registry.

`create_app` follows the Flask tutorial's factory: gunicorn calls it once per worker (preload is
off, so each worker loads its own models and starts its own poll thread after the fork), and tests
call it with their own settings and, in unit tests, an in-memory model store. Each app validates
request bodies with the contract built for its limits (router.contract) and publishes the same
models as its OpenAPI document (router.openapi).
"""

from __future__ import annotations

from flask import Flask

from router import clients, contract, errors, invocations, openapi, v2, views
from router.records import customer_key
from router.state import EXTENSION, RouterState
from router.store import ModelStore, Store
from ticket_ab.durable import EVERY
from ticket_ab.logstore import FEEDBACK, REQUESTS
from ticket_ab.logwriter import ShardedLog
from ticket_ab.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from ticket_ab.settings import Settings, get_settings


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    """Build a router for `settings` (the environment by default) and load its models."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max(settings.router.max_body_bytes, settings.router.max_batch_body_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # answers keep the documented key order
    model_store = store or ModelStore(settings)
    app.extensions[EXTENSION] = RouterState(
        settings=settings,
        store=model_store,
        config=model_store.config,
        requests=ShardedLog(settings.logs_dir, REQUESTS, REQUEST_COLUMNS, max_bytes=settings.log.max_bytes,
                            sync=settings.log.request_sync, sync_interval_s=settings.log.sync_interval_ms / 1000),
        feedback=ShardedLog(settings.logs_dir, FEEDBACK, FEEDBACK_COLUMNS, max_bytes=settings.log.max_bytes,
                            sync=EVERY),  # a 202 means the label is on disk
        customer_key=customer_key(settings.router.customer_key),
        clients=clients.for_settings(settings.router),
    )
    errors.register(app)
    for blueprint in (views.bp, invocations.bp, v2.bp):
        app.register_blueprint(blueprint)
    app.extensions[contract.EXTENSION] = contract.for_settings(settings.router)
    app.extensions[openapi.EXTENSION] = openapi.document(app, app.extensions[contract.EXTENSION])  # after the routes
    model_store.start()
    return app
