"""Test helper: build router logs by hand (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import csv
from pathlib import Path


def append_rows(path: Path, columns: tuple[str, ...], rows: list[list[object]]) -> None:
    """Append CSV rows, starting a new file with its header, as the router's log writer does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(columns)
        writer.writerows(rows)
