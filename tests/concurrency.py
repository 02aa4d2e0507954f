"""Test helper: start attempts at the same instant, as concurrent clients would."""

from __future__ import annotations

import threading
from collections.abc import Callable


def race(count: int, attempt: Callable[[int], str]) -> list[str]:
    """Run `attempt(0..count-1)` in `count` threads released together by a barrier; their outcomes."""
    outcomes: list[str] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        outcomes.append(attempt(n))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
