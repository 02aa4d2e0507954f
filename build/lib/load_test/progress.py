"""A dependency-free progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise.

stderr keeps stdout clean for the summary and its JSON line, which scripts parse.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def render(done: int, total: int, errors: int, elapsed_s: float, width: int = 30) -> str:
    """`[#########.....]  300/1000  30%  41.0 req/s  errors 2  ETA 17s`"""
    share = done / total if total else 1.0
    filled = int(round(width * min(1.0, share)))
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = f"{(total - done) / rate:.0f}s" if rate > 0 and done < total else "-"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(total))}}/{total} {share:4.0%}  "
            f"{rate:6.1f} req/s  errors {errors}  ETA {eta}")


class Progress:
    """Thread-safe: workers call `tick` after each request."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, interval_s: float = 0.2) -> None:
        self.total = total
        self.stream = stream or sys.stderr  # looked up now, so a redirected stderr is honoured
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval_s = interval_s
        self.done = 0
        self.errors = 0
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = 0
        self._lock = threading.Lock()

    def tick(self, failed: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.errors += int(failed)
            now = time.monotonic()
            if not self.enabled:
                return
            if self.tty and (now - self._last_draw >= self.interval_s or self.done == self.total):
                self._last_draw = now
                self.stream.write("\r" + render(self.done, self.total, self.errors, now - self._started))
                self.stream.flush()
            elif not self.tty and self.done * 10 // self.total > self._last_decile:
                self._last_decile = self.done * 10 // self.total
                self.stream.write(render(self.done, self.total, self.errors, now - self._started) + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
