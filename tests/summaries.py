"""Test helper: an A/B summary's topic figures, comparable between two runs over the same window.

A plain module (not conftest.py) so tests can import it (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

from analysis.priority import NAME as URGENT_MISSED


def topic_figures(summary: dict) -> dict:
    """The summary without its priority figures, the feedback row count and the urgent-missed guardrail, its numbers
    to 10 significant digits: DuckDB sums in parallel, so one window's figures differ between runs in the last bits."""
    arms = {arm: {k: v for k, v in figures.items() if k != "priority"} for arm, figures in summary["arms"].items()}
    guardrails = [g for g in summary["guardrails"] if g["name"] != URGENT_MISSED]
    return rounded(summary | {"arms": arms, "guardrails": guardrails,
                              "data": {k: v for k, v in summary["data"].items() if k != "feedback_rows"}})


def rounded(value):
    """`value` with every float to 10 significant digits (NaN as the string "nan", which equals itself)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    if isinstance(value, float):
        return "nan" if value != value else float(f"{value:.10g}")
    return value
