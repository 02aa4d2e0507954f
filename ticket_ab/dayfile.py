"""The compacted day file: one Parquet file holding a closed day's checked rows of one log.

Its rows are the log's columns as strings, exactly as the CSV parse gives them (before numbers and
timestamps are parsed), so a reader turns them into the same frame it makes of the CSV shards.
Besides the rows it records, in the file's metadata, the names of the shards folded into it (a
shard it lists is a leftover, one it does not is read as well) and the head of every line that did
not count (a torn or edited line): a reader counts those again when its range covers them, so a
compacted day reports the same malformed figure its shards did. Parquet's page checksums are
written and verified, the columnar counterpart of the CSV lines' CRC. Encoding lives here, apart
from the reader and from compaction, because both need it and the reader must not import compaction.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd

SHARDS_ATTR, DROPPED_ATTR = "ticket_ab_shards", "ticket_ab_dropped"
_BYTES = "latin-1"  # the heads are raw bytes (maybe not UTF-8); latin-1 maps each byte to one character and back


@dataclass
class DayFile:
    rows: pd.DataFrame  # the log's columns, strings; a column the file lacks reads as empty
    shards: set[str]  # names of the CSV shards folded in
    dropped: bytes  # the head of each line that did not count, one per line (empty: counted in any range)


def encode_day_file(rows: pd.DataFrame, shards: set[str], dropped: list[bytes]) -> bytes:
    """The Parquet bytes of a day: `rows` (strings) with the shard names and the dropped lines' heads."""
    frame = rows.reset_index(drop=True)
    frame.attrs = {SHARDS_ATTR: sorted(shards), DROPPED_ATTR: b"".join(h + b"\n" for h in dropped).decode(_BYTES)}
    out = io.BytesIO()
    frame.to_parquet(out, engine="pyarrow", compression="zstd", index=False, write_page_checksum=True)
    return out.getvalue()


def read_day_file(source: Path | BinaryIO, columns: tuple[str, ...]) -> DayFile:
    """A day file's rows as `columns` (page checksums verified), the shards it folded, its dropped heads."""
    frame = pd.read_parquet(source, engine="pyarrow", page_checksum_verification=True)
    attrs = frame.attrs
    rows = frame.reindex(columns=list(columns), fill_value="").astype(object)
    rows.attrs = {}
    return DayFile(rows, set(attrs.get(SHARDS_ATTR, [])), attrs.get(DROPPED_ATTR, "").encode(_BYTES))
