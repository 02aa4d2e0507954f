"""Structured one-line logs: `2026-11-24T11:00:00Z INFO retrain.ml.automl event key=value ...`.

Every process (CLI, DAG task, router worker) logs the same way, so one grep follows a model
version or a request id across all of them.
"""

from __future__ import annotations

import logging
import sys
import time

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup(level: int = logging.INFO) -> None:
    """Idempotently route our loggers to stderr in the one-line format."""
    root = logging.getLogger("ticket_ab")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(_FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    setup()
    return logging.getLogger(f"ticket_ab.{name}")


def kv(event: str, **fields: object) -> str:
    """Render `event k=v ...`; values with spaces are quoted so the line stays machine-parsable."""
    parts = [event]
    for key, value in fields.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        if not text or any(c.isspace() for c in text) or '"' in text:
            text = '"' + text.replace('"', "'").replace("\n", " ") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)
