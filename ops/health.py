"""Waiting for a health check: the one polling helper of operations (starting and stopping is supervisord's job).

`make stack` and `make demo` start a program through supervisord and then wait here until it answers:
every wait has a deadline and fails with one message naming what it waited for, or at once with the
reason another check reports (a program supervisord gave up on, with its log tail), since waiting
longer could not help.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ServiceError(RuntimeError):
    """A service could not start or did not come up; the message says why (the CLI prints it as one line)."""


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def log_tail(log: Path, lines: int = 30) -> str:
    """A log's last lines, formatted to end an error message ('' while there is no log)."""
    if not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)


def wait_until(predicate: Callable[[], T], deadline_s: float, what: str,
               failed: Callable[[], str | None] | None = None, interval_s: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy, and return that.

    `failed`, if given, returns why waiting cannot succeed any more (or None); the wait then ends at
    once with that reason instead of running into its deadline.
    """
    end = time.monotonic() + deadline_s
    while True:
        result = predicate()
        if result:
            return result
        reason = failed() if failed is not None else None
        if reason:
            raise ServiceError(f"{reason} (while waiting until {what})")
        if time.monotonic() >= end:
            raise ServiceError(f"gave up after {deadline_s:.0f} s waiting until {what}")
        time.sleep(interval_s)
