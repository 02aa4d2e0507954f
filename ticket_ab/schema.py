"""The ticket contract shared by the generator, the router log, the DAG and training.

Loading is the edge where users' files enter the system, so every problem is reported as one
`TicketDataError` that names the file, its row count and what is wrong, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

TEXT = "text"
TOPIC = "topic"
PRIORITY = "priority"  # optional: tickets without one train the topic head only (ticket_ab.twohead)
OPTIONAL_COLUMNS = ("ticket_id", "customer_id", "created_at", PRIORITY, "language")
COLUMNS = (TEXT, TOPIC, *OPTIONAL_COLUMNS)

# The helpdesk topics of the generated tickets (real data may bring its own label set).
TOPICS = (
    "access",
    "billing",
    "email",
    "hardware",
    "hr_onboarding",
    "network",
    "purchase",
    "software_bug",
)
PRIORITIES = ("low", "medium", "high", "urgent")
LANGUAGES = ("en", "ru")


class TicketDataError(ValueError):
    """A ticket file or frame does not satisfy the schema; the message says where and why."""


def is_known(values: pd.Series) -> pd.Series:
    """Which values are known: not missing and not blank (a label, a priority, any optional field)."""
    return values.notna() & values.astype(str).str.strip().ne("")


def as_labels(values: Iterable[object]) -> list[str | None]:
    """Each value as a label: stripped, None where it is blank or not a string (missing)."""
    return [value.strip() or None if isinstance(value, str) else None for value in values]


def validate_tickets(
    df: pd.DataFrame,
    *,
    source: str = "<frame>",
    require_topic: bool = False,
    topics: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Return a clean copy (text as str, topic as str) or raise naming the first problem found."""
    where = f"{source} ({len(df)} rows)"
    if TEXT not in df.columns:
        raise TicketDataError(f"{where}: missing required column '{TEXT}' (columns: {list(df.columns)})")
    if require_topic and TOPIC not in df.columns:
        raise TicketDataError(f"{where}: missing column '{TOPIC}', which training needs")
    if df.empty:
        raise TicketDataError(f"{where}: no tickets")
    out = df.copy()
    text = out[TEXT]
    empty = text.isna() | text.astype(str).str.strip().eq("")
    if empty.any():
        rows = _row_numbers(empty)
        raise TicketDataError(f"{where}: {int(empty.sum())} tickets have empty '{TEXT}' (rows {rows})")
    out[TEXT] = text.astype(str)
    if TOPIC in out.columns:
        missing = out[TOPIC].isna() | out[TOPIC].astype(str).str.strip().eq("")
        if require_topic and missing.any():
            rows = _row_numbers(missing)
            raise TicketDataError(f"{where}: {int(missing.sum())} tickets have no '{TOPIC}' (rows {rows})")
        out.loc[~missing, TOPIC] = out.loc[~missing, TOPIC].astype(str).str.strip()
        if topics is not None:
            known = set(topics)
            unknown = ~missing & ~out[TOPIC].isin(known)
            if unknown.any():
                labels = sorted(out.loc[unknown, TOPIC].unique())[:5]
                raise TicketDataError(
                    f"{where}: {int(unknown.sum())} tickets have unknown labels {labels} "
                    f"(known: {sorted(known)})"
                )
    return out


def load_tickets(
    path: str | Path,
    *,
    require_topic: bool = False,
    topics: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file of tickets and validate it."""
    path = Path(path)
    if not path.exists():
        raise TicketDataError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={TEXT: str, TOPIC: str}, keep_default_na=False, na_values=[""])
    except Exception as exc:  # any reader failure is a bad file from the user's point of view
        raise TicketDataError(f"{path}: cannot be read as tickets ({type(exc).__name__}: {exc})") from None
    return validate_tickets(df, source=str(path), require_topic=require_topic, topics=topics)


def save_tickets(df: pd.DataFrame, path: str | Path) -> Path:
    """Write tickets as CSV or Parquet by suffix, creating the parent directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def _row_numbers(mask: pd.Series, limit: int = 5) -> str:
    rows = [str(i) for i in mask.to_numpy().nonzero()[0][:limit]]
    more = int(mask.sum()) - len(rows)
    return ", ".join(rows) + (f", +{more} more" if more > 0 else "")
