"""The training memory: every labelled ticket the pipeline has accepted, keyed by request id.

One parquet file, `TICKET_AB_HOME/data/labels.parquet`, rewritten atomically by the DAG (one run at
a time). Each retrain draws its training data from it, so a model keeps what earlier windows taught
and late feedback still counts: feedback for a request of an earlier window finds its ticket here.

Rows and precedence (one row per key; a higher origin replaces a lower one, the same origin the
older one): `bootstrap` (the champion's training reference, seeded once) < `pseudo` (accepted
pseudo-labels) < `gold` (agents' feedback; the last label of a request wins). `status` is `ok`;
`quarantined` for feedback in a suspicious label pattern: its label is never drawn until an
operator confirms the pattern, but the ticket is, with the champion's answer (`champion_topic`),
so holding a label back never takes a ticket's text out of training and the challenger learns
from it only what the champion already believed; or `pending` for late feedback (a label for a
ticket of an earlier window, keyed `late:<request id>` beside its ticket): never drawn, judged at
the next quarantine with that window's feedback (`retrain.ml.relabel`), then written onto its
ticket (accepted or quarantined) or dropped (disputed: the review queue has it).

A ticket's `priority` is a label of its own: a row may hold a topic, a priority or both. A row
with only a priority (feedback correcting only the priority) never replaces a topic: it adds its
priority to the ticket's row (or is the ticket's row when it has none), and a topic without a
priority keeps the priority the ticket had. So a correction of one never erases the other.

Recency policy of a draw: `ok` rows (and quarantined rows of confirmed patterns) with their labels,
unconfirmed quarantined rows with the champion's answer, the window's untouched gate gold excluded,
newest ticket first (bootstrap rows last, they are the oldest), at most TICKET_AB_STORE_MAX_ROWS;
a topic whose labels the window's quarantine held keeps at least its share of the store's drawable
rows (the window brings no labels of it, so a recency cap alone would push it out). So does each
priority, and at least as many rows as the selection has folds (or all it has): priorities are sparse
(optional feedback, and the bootstrap rows, which go last), so a recency cap alone would leave the
priority head too few rows to be trained, and a champion with that head would then block every
challenger without one. Rows with only a priority enter the draw through that reserve, or after every
topic row when there is room: they never push a topic row out beyond their share. The draw logs what
it holds. The draw's fingerprint is tagged on the version it trains.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ticket_ab.atomic import exclusive, replace_file
from ticket_ab.log import get_logger, kv
from ticket_ab.schema import PRIORITY, TEXT, TOPIC, as_labels, is_known
from ticket_ab.settings import TrainingSettings

log = get_logger("labelstore")
KEY = "key"
# PRIORITY (ticket_ab.schema) is the ticket's priority label: None where unknown; stores written before it read None
# the selection's folds when a caller does not say (the setting's default, stated there once)
FOLDS = TrainingSettings.model_fields["automl_folds"].default
COLUMNS = (KEY, "request_id", "ticket_id", "customer_id", TEXT, TOPIC, "origin", "label_source", "status", "pattern",
           "champion_topic", "timestamp", PRIORITY)
BOOTSTRAP, PSEUDO, GOLD = "bootstrap", "pseudo", "gold"
CHAMPION = "champion"  # a drawn held ticket, labelled with the champion's answer (a model's label, as pseudo)
PRECEDENCE = {BOOTSTRAP: 0, PSEUDO: 1, CHAMPION: 1, GOLD: 2}
OK, QUARANTINED, PENDING = "ok", "quarantined", "pending"
LATE = "late:"  # key prefix of a pending late label, beside its ticket's own row
OLDEST = pd.Timestamp("1970-01-01", tz="UTC")


def path_for(data_dir: Path) -> Path:
    return Path(data_dir) / "labels.parquet"


def empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    return frame.astype({"timestamp": "datetime64[ns, UTC]"})


def load(path: Path) -> pd.DataFrame:
    """The store, or an empty one (first run); a column added since the file was written reads as empty."""
    if not Path(path).exists():
        return empty()
    store = pd.read_parquet(path)
    for column in COLUMNS:
        if column not in store:
            store[column] = None
    return store[list(COLUMNS)]


def save(path: Path, store: pd.DataFrame) -> None:
    """Write to a unique, fsynced temporary file and rename: a crash never leaves half a store. Callers
    that read first use `update`, so no concurrent run's rows are lost."""
    replace_file(path, lambda fh: store.to_parquet(fh, index=False))


def update(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """Load, `change` and save the store as one step, one run at a time (a lock file beside it that a
    crash releases): two overlapping DAG runs each see the other's rows, none is overwritten."""
    with exclusive(Path(path).with_name(Path(path).name + ".lock")):
        store = change(load(path))
        save(path, store)
    return store


def keys_for(rows: pd.DataFrame) -> pd.Series:
    """The request id; a ticket from a file has none, so its ticket id stands in."""
    request = rows["request_id"].astype("string").fillna("")
    ticket = "ticket:" + rows["ticket_id"].astype("string").fillna("")
    return request.where(request.ne(""), ticket).astype(str)


def rows_from(frame: pd.DataFrame, origin: str, status: str = OK) -> pd.DataFrame:
    """Store rows for labelled tickets (`text`, `topic`, ids, `timestamp` when known)."""
    out = pd.DataFrame({c: frame[c] if c in frame else None for c in COLUMNS if c != KEY}, index=frame.index)
    out["origin"], out["status"] = origin, status
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True, errors="coerce").fillna(OLDEST)
    out.insert(0, KEY, keys_for(out) if origin != BOOTSTRAP else "bootstrap:" + out[TEXT].map(_digest))
    return out[list(COLUMNS)].reset_index(drop=True)


def upsert(store: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` merged in by key: higher origin wins, then the newer row; re-applying changes nothing. Per field: a
    row with a topic wins over one without (a priority-only correction), and the priority is the winning order's
    last one given (a topic without one keeps the ticket's)."""
    merged = pd.concat([store, rows], ignore_index=True)
    merged["_rank"] = merged["origin"].map(PRECEDENCE)
    merged = merged.sort_values("_rank", kind="stable")
    if merged[PRIORITY].notna().any():
        priorities = merged.groupby(KEY, sort=False)[PRIORITY].last()  # the last non-missing one, in that order
        merged = merged.assign(_topic=merged[TOPIC].notna()).sort_values("_topic", kind="stable")
        merged = merged.drop_duplicates(KEY, keep="last").drop(columns="_topic")
        merged[PRIORITY] = merged[KEY].map(priorities)
    else:
        merged = merged.drop_duplicates(KEY, keep="last")
    return merged.drop(columns="_rank").sort_values(KEY, kind="stable").reset_index(drop=True)


def add_pending(store: pd.DataFrame, late: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Late feedback (request_id, label, source, priority; label or priority '' where not given) for stored
    tickets, as pending rows beside them.

    Keyed `late:<request id>`, so a re-read of the same feedback changes nothing and a newer label
    for the same request replaces the older pending one; the ticket's own row stays as it is. A
    label the ticket already has as gold (a window's own feedback read again: the feedback log is
    read from the request watermark on) was judged with its window and waits for nothing, and so does a
    priority the ticket already has.
    """
    tickets = store.loc[store["status"].ne(PENDING)].set_index(KEY)
    found = late.loc[late["request_id"].isin(tickets.index)].drop_duplicates("request_id", keep="last")
    label, priority = _given(found, "label"), _given(found, PRIORITY)
    known = tickets.reindex(found["request_id"])
    same_topic = label.isna().to_numpy() | (known["origin"].eq(GOLD).to_numpy() & (
        known[TOPIC].to_numpy() == label.to_numpy()))
    same_priority = priority.isna().to_numpy() | (known[PRIORITY].to_numpy() == priority.to_numpy())
    judged = same_topic & same_priority
    found, label, priority = found.loc[~judged], label.loc[~judged], priority.loc[~judged]
    if found.empty:
        return store, 0
    rows = tickets.loc[found["request_id"]].reset_index()
    rows[TOPIC], rows["label_source"] = label.to_numpy(), found["source"].to_numpy()
    rows[PRIORITY] = priority.to_numpy()
    rows["origin"], rows["status"], rows["pattern"], rows["champion_topic"] = GOLD, PENDING, None, None
    rows[KEY] = LATE + rows["request_id"].astype(str)
    return upsert(store, rows[list(COLUMNS)]), int(len(found))


def _given(frame: pd.DataFrame, column: str) -> pd.Series:
    """`frame[column]` stripped, None where blank or absent (late feedback from before priorities has none)."""
    if column not in frame:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return pd.Series(as_labels(frame[column]), index=frame.index, dtype=object)


def pending(store: pd.DataFrame) -> pd.DataFrame:
    """The late labels waiting for the next quarantine."""
    return store.loc[store["status"].eq(PENDING)].reset_index(drop=True)


def drop_keys(store: pd.DataFrame, keys: set[str]) -> pd.DataFrame:
    """The store without the rows of `keys` (judged pending labels)."""
    return store.loc[~store[KEY].isin(keys)].reset_index(drop=True)


def draw(store: pd.DataFrame, max_rows: int, *, exclude: set[str] = frozenset(),
         confirmed: set[str] = frozenset(), held_topics: set[str] = frozenset(), folds: int = FOLDS) -> pd.DataFrame:
    """The training data of a retrain, by the recency policy in the module docstring (`folds`: the selection's, so
    each priority the store has keeps enough rows to be cross-validated)."""
    rows = _drawable(store, exclude, confirmed)
    kept = [rows.loc[rows[TOPIC].eq(topic)].head(math.ceil(max_rows * float(rows[TOPIC].eq(topic).mean())))
            for topic in sorted(held_topics) if len(rows)]
    prioritised = _priority_reserve(rows, max_rows, folds)
    reserved = pd.concat([*kept, prioritised]) if kept or len(prioritised) else rows.iloc[0:0]
    reserved = reserved.loc[~reserved.index.duplicated()]
    rest = rows.drop(index=reserved.index)
    topic = rest[TOPIC].notna()
    chosen = pd.concat([reserved, rest.loc[topic], rest.loc[~topic]]).head(max_rows)
    drawn = rows.loc[rows.index.isin(chosen.index)].drop(columns="_rank").reset_index(drop=True)
    log.info(kv("label_store_draw", **draw_stats(rows, drawn, len(prioritised))))
    return drawn


def _drawable(store: pd.DataFrame, exclude: set[str], confirmed: set[str]) -> pd.DataFrame:
    """Every row a draw may take, newest first: labelled rows, held rows with the champion's answer."""
    labelled = store["status"].eq(OK) | store["pattern"].isin(confirmed)
    held = store["status"].eq(QUARANTINED) & ~labelled & store["champion_topic"].notna()
    answered = store.loc[held].assign(**{TOPIC: store.loc[held, "champion_topic"], "origin": CHAMPION})
    rows = pd.concat([store.loc[labelled], answered], ignore_index=True)
    rows = rows.loc[~rows[KEY].isin(exclude)]
    rows = rows.assign(_rank=rows["origin"].map(PRECEDENCE))
    return rows.sort_values(["timestamp", "_rank", KEY], ascending=[False, False, True], kind="stable")


def _has_priority(rows: pd.DataFrame) -> pd.Series:
    return is_known(rows[PRIORITY])


def _priority_reserve(rows: pd.DataFrame, max_rows: int, folds: int) -> pd.DataFrame:
    """The newest rows of each priority, as many as its share of the drawable rows takes of `max_rows`, and at
    least `folds` (or all it has): the priority head's cross-validation needs `folds` of each."""
    given = rows.loc[_has_priority(rows)]
    parts = [group.head(max(math.ceil(max_rows * len(group) / len(rows)), min(len(group), folds)))
             for _, group in given.groupby(given[PRIORITY].astype(str).str.strip(), sort=True)]
    return pd.concat(parts) if parts else rows.iloc[0:0]


def draw_stats(rows: pd.DataFrame, drawn: pd.DataFrame, reserved: int) -> dict[str, object]:
    """What a draw holds, for its log line: its rows, those with a topic, with a priority (per priority), with only
    a priority, the priority rows reserved, and the drawable priority rows it left out."""
    priority, drawable = _has_priority(drawn), int(_has_priority(rows).sum())
    counts = drawn.loc[priority, PRIORITY].astype(str).str.strip().value_counts().sort_index()
    stats: dict[str, object] = {
        "rows": int(len(drawn)), "topic_rows": int(drawn[TOPIC].notna().sum()), "priority_rows": int(priority.sum()),
        "priority_only_rows": int((priority & drawn[TOPIC].isna()).sum()), "priority_reserved": int(reserved),
        "priority_left_out": drawable - int(priority.sum()),
        "priorities": ",".join(f"{k}:{v}" for k, v in counts.items()) or "none"}
    if not drawable:
        stats["note"] = "no drawable row has a priority: the priority head cannot be trained on this draw"
    return stats


def missing_priorities(store: pd.DataFrame, reference: pd.DataFrame) -> str | None:
    """Why the store holds no priority although the champion's reference has some, or None.

    The bootstrap rows are seeded once, from the champion of the store's first run: a store begun
    under a champion without a priority head keeps none after a champion with one is promoted, and
    nothing is invented for it; priorities come back with feedback (or an operator re-seeding the store)."""
    stored = store.loc[store["status"].ne(PENDING)]
    if PRIORITY not in reference or _has_priority(stored).any():
        return None
    given = int(_has_priority(reference).sum())
    if not given:
        return None
    return (f"the label store holds no priority label although the champion's reference has {given}: its "
            "bootstrap was seeded (once) under a champion without priorities; the priority head is trained "
            "again once feedback brings priorities")


def expire(store: pd.DataFrame, days: int, now: pd.Timestamp) -> pd.DataFrame:
    """The store without tickets older than `days` (TICKET_AB_STORE_RETENTION_DAYS; 0 keeps all): it holds
    ticket texts, so it forgets as the logs do, only later. The champion's reference (`bootstrap`) stays,
    and so do pending late labels, which the next quarantine still has to judge."""
    if days <= 0:
        return store
    old = store["timestamp"] < now - pd.Timedelta(days=days)
    kept = store["origin"].eq(BOOTSTRAP) | store["status"].eq(PENDING)
    return store.loc[~old | kept].reset_index(drop=True)


def fingerprint(rows: pd.DataFrame) -> str:
    """Order-independent hash of (key, topic, priority): the same training memory, the same fingerprint (a row
    without a priority hashes as before priorities, so a memory without any keeps its fingerprint)."""
    labels = rows[[KEY, TOPIC]].astype(str)
    if PRIORITY in rows and rows[PRIORITY].notna().any():
        labels[TOPIC] += rows[PRIORITY].map(lambda p: "" if pd.isna(p) else f"|{p}")
    hashed = pd.util.hash_pandas_object(labels, index=False).sort_values()
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]


def summary(store: pd.DataFrame) -> dict[str, int]:
    counts = store.groupby(["origin", "status"]).size()
    return {f"{origin}_{status}": int(n) for (origin, status), n in counts.items()} | {"rows": int(len(store))}


def _digest(text: str) -> str:
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:20]
