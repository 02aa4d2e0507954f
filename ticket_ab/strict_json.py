"""Values made valid strict JSON, for what travels or is written as JSON (Airflow's XCom, the A/B summary)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """`value` with nan/inf as null and numpy scalars as Python numbers (dict keys as strings): strict JSON refuses
    NaN, and a figure nothing could be measured on is NaN."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
