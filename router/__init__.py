"""The A/B router: a Flask app that serves champion vs challenger from the MLflow registry.

`create_app` follows the Flask tutorial's factory: gunicorn calls it once per worker (preload is
off, so each worker loads its own models and starts its own poll thread after the fork), and tests
call it with their own settings and, in unit tests, an in-memory model store.
"""

from __future__ import annotations

from flask import Flask

from retrain.contracts.logwriter import CsvAppender
from retrain.contracts.requestlog import FEEDBACK_COLUMNS, REQUEST_COLUMNS
from retrain.contracts.settings import Settings, get_settings
from router import errors, views
from router.config import ABConfig, ConfigStore
from router.state import EXTENSION, RouterState
from router.store import ModelStore, Store

CONFIG_FILE = "config.json"


def create_app(settings: Settings | None = None, store: Store | None = None) -> Flask:
    """Build a router for `settings` (the environment by default) and load its models."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.router.max_body_bytes
    app.json.sort_keys = False
    model_store = store or ModelStore(settings)
    app.extensions[EXTENSION] = RouterState(
        settings=settings,
        store=model_store,
        config=ConfigStore(settings.router_dir / CONFIG_FILE, ABConfig(ab_split_b=settings.router.split_b)),
        requests=CsvAppender(settings.request_log, REQUEST_COLUMNS),
        feedback=CsvAppender(settings.feedback_log, FEEDBACK_COLUMNS),
    )
    errors.register(app)
    app.register_blueprint(views.bp)
    model_store.start()
    return app
