"""How the report writes numbers, in one place: the console, the HTML, the figure and the verdict's
reason all use these, so a number in one can be found verbatim in the others."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from ticket_ab.names import ARM_ALIAS


def missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def pct(x: float | None, digits: int = 1) -> str:
    """A proportion as a percentage: `85.3%`."""
    return "n/a" if missing(x) else f"{x:.{digits}%}"


def split_share(x: float | None) -> str:
    """A configured split without false precision: `50%`, `12.5%`."""
    return "n/a" if missing(x) else f"{x * 100:g}%"


def pts(x: float | None) -> str:
    """A difference of proportions in percentage points, signed: `+8.0 pts`."""
    return "n/a" if missing(x) else f"{x * 100:+.1f} pts"


def pval(p: float | None) -> str:
    """A p-value for tables: `0.0123` or `< 0.0001`."""
    if missing(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def p_is(p: float | None) -> str:
    """A p-value for running text: `p = 0.0123` or `p < 0.0001`."""
    text = pval(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def num(x: float | None, digits: int = 1) -> str:
    """A count with thousands separators (`never` for an infinite sample size)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    return f"{x:,.{digits}f}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x):,}"


def likelihood_ratio(x: float | None, digits: int = 1) -> str:
    """Evidence as a likelihood ratio a reader can take in: `6.3`, `1,234.5`, or `> 10^6` once it is far past
    any threshold in use (the mixture grows exponentially, and 29 digits say nothing more than "overwhelming")."""
    return "> 10^6" if x is not None and x >= 1e6 else num(x, digits)


def interval(ci: Sequence[float | None], formatter: Callable[[float | None], str] = pct) -> str:
    """`79.0% to 84.3%`."""
    low, high = ci
    return "n/a" if missing(low) or missing(high) else f"{formatter(low)} to {formatter(high)}"


def ms(value: float | None) -> str:
    """A latency with sensible precision: `0.85 ms`, `2.4 ms`, `38 ms`."""
    if missing(value):
        return "n/a"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def when(iso: str | None) -> str:
    """An ISO timestamp as `2026-11-24 09:08:20` (UTC)."""
    return "n/a" if not iso else pd.Timestamp(iso).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")


def arm_label(summary: dict[str, Any], arm: str) -> str:
    """An arm with its alias and the model versions it served: `B · challenger v4`."""
    versions = summary["arms"][arm]["versions"]
    return f"{arm} · {ARM_ALIAS[arm]}" + (f" v{', v'.join(versions)}" if versions else "")
