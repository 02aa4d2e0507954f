"""Everything a worker's views share, built once per app by `create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from retrain.contracts.logwriter import CsvAppender
from retrain.contracts.settings import Settings
from router.config import ConfigStore
from router.store import Store

EXTENSION = "ticket_ab"


@dataclass(frozen=True)
class RouterState:
    """One app's settings, model store, shared config and log appenders."""

    settings: Settings
    store: Store
    config: ConfigStore
    requests: CsvAppender
    feedback: CsvAppender


def current() -> RouterState:
    """The state of the app handling the current request."""
    return current_app.extensions[EXTENSION]
