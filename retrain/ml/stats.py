"""The Wilson score interval, shared by pseudo-label calibration and the A/B report.

Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near 0% and 100% and at the
small counts of an early experiment or a thin confidence bin.
"""

from __future__ import annotations

import numpy as np


def wilson_bounds(hits, n, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper Wilson bounds of hits/n at normal quantile `z` (scalars or arrays)."""
    hits, n = np.asarray(hits, dtype=float), np.asarray(n, dtype=float)
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def wilson_lower(hits, n, z: float) -> np.ndarray:
    """The lower bound alone: "at least this share, with the stated confidence"."""
    return wilson_bounds(hits, n, z)[0]
