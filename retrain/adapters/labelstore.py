"""The training memory: every labelled ticket the pipeline has accepted, keyed by request id.

One parquet file, `TICKET_AB_HOME/data/labels.parquet`, rewritten atomically by the DAG (one run at
a time). Each retrain draws its training data from it, so a model keeps what earlier windows taught
and late feedback still counts: feedback for a request of an earlier window finds its ticket here.

Rows and precedence (one row per key; a higher origin replaces a lower one, the same origin the
older one): `bootstrap` (the champion's training reference, seeded once) < `pseudo` (accepted
pseudo-labels) < `gold` (agents' feedback; the last label of a request wins). `status` is `ok`,
or `quarantined` for feedback in a suspicious label pattern (kept, never drawn until an operator
confirms the pattern).

Recency policy of a draw: only `ok` rows (and quarantined rows of confirmed patterns), the window's
untouched gate gold excluded, newest ticket first (bootstrap rows last, they are the oldest), at
most TICKET_AB_STORE_MAX_ROWS; the draw's fingerprint is tagged on the version it trains.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ticket_ab.schema import TEXT, TOPIC

KEY = "key"
COLUMNS = (KEY, "request_id", "ticket_id", "customer_id", TEXT, TOPIC, "origin", "label_source", "status", "pattern",
           "timestamp")
BOOTSTRAP, PSEUDO, GOLD = "bootstrap", "pseudo", "gold"
PRECEDENCE = {BOOTSTRAP: 0, PSEUDO: 1, GOLD: 2}
OK, QUARANTINED = "ok", "quarantined"
OLDEST = pd.Timestamp("1970-01-01", tz="UTC")


def path_for(data_dir: Path) -> Path:
    return Path(data_dir) / "labels.parquet"


def empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    return frame.astype({"timestamp": "datetime64[ns, UTC]"})


def load(path: Path) -> pd.DataFrame:
    """The store, or an empty one (first run)."""
    return pd.read_parquet(path) if Path(path).exists() else empty()


def save(path: Path, store: pd.DataFrame) -> None:
    """Write to a temporary file and rename: a crash never leaves half a store."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    store.to_parquet(tmp, index=False)
    tmp.replace(path)


def keys_for(rows: pd.DataFrame) -> pd.Series:
    """The request id; a ticket from a file has none, so its ticket id stands in."""
    request = rows["request_id"].astype("string").fillna("")
    ticket = "ticket:" + rows["ticket_id"].astype("string").fillna("")
    return request.where(request.ne(""), ticket).astype(str)


def rows_from(frame: pd.DataFrame, origin: str, status: str = OK) -> pd.DataFrame:
    """Store rows for labelled tickets (`text`, `topic`, ids, `timestamp` when known)."""
    out = pd.DataFrame({c: frame[c] if c in frame else None for c in COLUMNS if c != KEY}, index=frame.index)
    out["origin"], out["status"] = origin, status
    if "pattern" not in frame:
        out["pattern"] = None
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True, errors="coerce").fillna(OLDEST)
    out.insert(0, KEY, keys_for(out) if origin != BOOTSTRAP else "bootstrap:" + out[TEXT].map(_digest))
    return out[list(COLUMNS)].reset_index(drop=True)


def upsert(store: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` merged in by key: higher origin wins, then the newer row; re-applying changes nothing."""
    merged = pd.concat([store, rows], ignore_index=True)
    merged["_rank"] = merged["origin"].map(PRECEDENCE)
    merged = merged.sort_values("_rank", kind="stable").drop_duplicates(KEY, keep="last")
    return merged.drop(columns="_rank").sort_values(KEY, kind="stable").reset_index(drop=True)


def apply_late(store: pd.DataFrame, late: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Late feedback (request_id, label, source) onto the stored tickets it names: they become gold."""
    found = late.loc[late["request_id"].isin(store[KEY])]
    if found.empty:
        return store, 0
    tickets = store.set_index(KEY).loc[found["request_id"]].reset_index()
    tickets[TOPIC], tickets["label_source"] = found["label"].to_numpy(), found["source"].to_numpy()
    tickets["origin"], tickets["status"], tickets["pattern"] = GOLD, OK, None
    return upsert(store, tickets[list(COLUMNS)]), int(len(found))


def draw(store: pd.DataFrame, max_rows: int, *, exclude: set[str] = frozenset(),
         confirmed: set[str] = frozenset()) -> pd.DataFrame:
    """The training data of a retrain, by the recency policy in the module docstring."""
    usable = store["status"].eq(OK) | store["pattern"].isin(confirmed)
    rows = store.loc[usable & ~store[KEY].isin(exclude)]
    rows = rows.assign(_rank=rows["origin"].map(PRECEDENCE))
    rows = rows.sort_values(["timestamp", "_rank", KEY], ascending=[False, False, True], kind="stable")
    return rows.head(max_rows).drop(columns="_rank").reset_index(drop=True)


def fingerprint(rows: pd.DataFrame) -> str:
    """Order-independent hash of (key, topic): the same training memory, the same fingerprint."""
    hashed = pd.util.hash_pandas_object(rows[[KEY, TOPIC]].astype(str), index=False).sort_values()
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def summary(store: pd.DataFrame) -> dict[str, int]:
    counts = store.groupby(["origin", "status"]).size()
    return {f"{origin}_{status}": int(n) for (origin, status), n in counts.items()} | {"rows": int(len(store))}


def _digest(text: str) -> str:
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:20]
