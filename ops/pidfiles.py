"""Pid files that name one process exactly: its pid and its start time.

`make stop` and `make stack-down` stop only what `make demo` and `make stack` started. A bare pid could
by then belong to another process (pids are reused), so each file also records the process's start
time, and a pid whose process started at another time is treated as gone.
"""

from __future__ import annotations

from pathlib import Path

import psutil


def record(directory: Path, name: str, pid: int) -> Path:
    """Write `<directory>/<name>.pid` for the running process `pid`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pid"
    path.write_text(f"{pid} {psutil.Process(pid).create_time()!r}")
    return path


def running(path: Path) -> int | None:
    """The pid a pid file names, if that very process still runs (None: gone, reused or no file)."""
    try:
        pid, started = path.read_text().split()
        return int(pid) if abs(psutil.Process(int(pid)).create_time() - float(started)) < 1.0 else None
    except (OSError, ValueError, psutil.NoSuchProcess):
        return None
