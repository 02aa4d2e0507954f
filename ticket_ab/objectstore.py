"""Log roots in an S3-compatible object store (`s3://bucket/prefix`), read through fsspec (s3fs).

The router keeps appending to local files: an object store can neither append nor fsync, so a
live day cannot live there. What can is the archive: closed days' compacted Parquet files (and
CSV shards, if an operator syncs them), laid out as on disk (`ticket_ab.logstore`), so the same
readers and query engines read either. A remote file or folder is a `RemotePath`: the few Path
methods the readers use (name, suffix, `/`, read_bytes), so a reader does not branch per file.

Where and who: the endpoint comes from TICKET_AB_S3_ENDPOINT_URL, else the standard
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (none: AWS itself); credentials only ever come from the
standard AWS chain (environment, config files, instance roles), never from arguments, so none can
end up in a command line, a settings dump or a log. Errors name the URL and the endpoint, never
a credential (known credential values are scrubbed from the server's messages too).

The third-party imports are optional: the router's import closure reaches this module (through
`ticket_ab.logstore`) and its image has no fsspec; a local root never needs it. fsspec loads s3fs
itself, through its protocol registry, on the first remote call.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, TypeAlias
from urllib.parse import urlsplit

try:  # absent from the router image: only remote roots need them (see the module docstring)
    import fsspec
except ImportError:  # pragma: no cover - the serving image
    fsspec = None
try:
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover - the serving image
    pq = None

if TYPE_CHECKING:
    import duckdb
    from fsspec import AbstractFileSystem

SCHEME = "s3://"
ENDPOINT_ENV = "TICKET_AB_S3_ENDPOINT_URL"
AWS_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # botocore's own names, in its order
PARQUET = ".parquet"  # the one suffix whose row count a publish reads back
MD5_META = "ticket-ab-md5"  # user metadata on a published object: the MD5 of its bytes (an ETag need not be one)
_SECRET_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_CLIENT_LIBRARIES = ("botocore", "aiobotocore", "aiohttp")  # their errors are translated (no import needed)


class ObjectStoreError(OSError):
    """An object-store root could not be used (no such bucket, access denied, unreachable): one line naming
    the URL and the endpoint, so a DAG log says which root and which server without a client traceback."""


@dataclass(frozen=True, order=True)
class RemotePath:
    """A file or folder under an `s3://` root: what the log readers use of a Path, nothing more."""

    url: str  # s3://bucket/key, without a trailing slash

    def __post_init__(self) -> None:
        if not is_remote(self.url):
            raise ValueError(f"not an {SCHEME} URL: {self.url!r}")
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def __str__(self) -> str:
        return self.url

    def __truediv__(self, part: str) -> RemotePath:
        return RemotePath(f"{self.url}/{part}")

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def read_bytes(self) -> bytes:
        """The object's bytes in one GET; FileNotFoundError when it is gone (a reader re-lists its day then)."""
        fs, path = filesystem(self.url)
        with translated(self.url):
            return fs.cat_file(path)


LogPath: TypeAlias = Path | RemotePath  # a log file or folder, local or in the object store


@dataclass(frozen=True)
class Listing:
    """One remote folder's direct children, by name."""

    folders: list[RemotePath]
    files: list[RemotePath]


@dataclass(frozen=True)
class Published:
    """Where a local file now is in the object store, and whether this call had to upload it."""

    url: str
    size: int
    rows: int | None  # a Parquet file's row count, read back from the stored object (None: not Parquet)
    uploaded: bool  # False: the object already held exactly these bytes


def is_remote(root: object) -> bool:
    """Whether a log root (or file) is an object-store URL rather than a local path.

    Only a string can be one: `Path("s3://b/p")` has already folded `//` into `/` (see `logstore.partitions`).
    """
    return isinstance(root, RemotePath) or (isinstance(root, str) and root.startswith(SCHEME))


def endpoint_url() -> str | None:
    """The S3 endpoint to talk to: ours, then botocore's standard variables; None means AWS itself."""
    for name in (ENDPOINT_ENV, *AWS_ENDPOINT_ENVS):
        if os.environ.get(name):
            return os.environ[name]
    return None


def filesystem(root: str | RemotePath) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of an `s3://` root and the root's path on it (`bucket/prefix`).

    Listings are not cached: a reader re-lists a day to see what compaction changed meanwhile, and a
    cached listing would hide exactly that. fsspec keeps one instance per endpoint and process.
    """
    url = str(root)
    if not is_remote(url):
        raise ValueError(f"not an {SCHEME} URL: {url!r}")
    path = url[len(SCHEME) :].rstrip("/")
    if not path or path.startswith("/"):
        raise ValueError(f"{url!r} names no bucket: use {SCHEME}bucket[/prefix]")
    if fsspec is None:
        raise ObjectStoreError(f"{url}: an {SCHEME} log root needs fsspec and s3fs (pip install 'ticket-ab[analysis]')")
    try:
        fs = fsspec.filesystem("s3", endpoint_url=endpoint_url(), use_listings_cache=False)
    except ImportError:
        raise ObjectStoreError(f"{url}: an {SCHEME} log root needs s3fs (pip install 'ticket-ab[analysis]')") from None
    return fs, path


def open_file(path: LogPath) -> BinaryIO:
    """A log file opened for reading, local or remote: what `read_day_file` and friends take.

    A remote file is fetched whole in one GET (a day file is read whole anyway) into memory, so the
    object can be replaced meanwhile without the read mixing two versions. FileNotFoundError when it is gone.
    """
    if isinstance(path, RemotePath):
        return io.BytesIO(path.read_bytes())
    return open(path, "rb")


def listing(folder: RemotePath) -> Listing:
    """The folders and files directly in a remote folder; a folder with nothing in it lists as empty.

    A missing bucket is not an empty log but a wrong URL (or endpoint): ObjectStoreError naming it.
    """
    fs, path = filesystem(folder)
    with translated(folder.url):
        try:
            entries = fs.ls(path, detail=True)
        except FileNotFoundError:
            _check_bucket(fs, folder.url)
            return Listing([], [])
    found: dict[bool, list[RemotePath]] = {True: [], False: []}
    for entry in entries:
        name = entry["name"].rstrip("/")
        if name != path:  # some stores list a folder's own marker object
            found[entry["type"] == "directory"].append(RemotePath(SCHEME + name))
    return Listing(sorted(found[True]), sorted(found[False]))


def _check_bucket(fs: AbstractFileSystem, url: str) -> None:
    bucket = url[len(SCHEME) :].split("/", 1)[0]
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
    except FileNotFoundError:
        raise ObjectStoreError(f"{url}: no bucket {bucket!r} at {_where()}") from None


@contextmanager
def translated(url: str, missing: str | None = None) -> Iterator[None]:
    """Turn the client's errors into one-line ObjectStoreErrors naming `url` and the endpoint.

    FileNotFoundError passes through (a reader re-lists a day whose file vanished), unless `missing`
    says what a missing thing means here (a PUT can only miss its bucket). The client's exception is
    not chained as the cause: its repr is a page of botocore internals, and the message says it all.
    """
    try:
        yield
    except ObjectStoreError:
        raise
    except FileNotFoundError:
        if missing is None:
            raise
        raise ObjectStoreError(_scrub(f"{url}: {missing} at {_where()}")) from None
    except PermissionError as exc:
        raise ObjectStoreError(_scrub(f"{url}: access denied by {_where()}: {exc}")) from None
    except OSError as exc:
        raise ObjectStoreError(_scrub(f"{url}: {_where()} failed: {exc}")) from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in _CLIENT_LIBRARIES:
            raise
        raise ObjectStoreError(_scrub(f"{url}: {_client_error(exc)} ({_where()})")) from None


def _client_error(exc: Exception) -> str:
    if type(exc).__name__ == "NoCredentialsError":
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE "
            "(the standard AWS chain; credentials are never taken from arguments)"
        )
    return f"{type(exc).__name__}: {exc}"


def _where() -> str:
    """The endpoint for a message, without any user:password part an operator may have put in its URL."""
    url = endpoint_url()
    if url is None:
        return "AWS S3"
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _scrub(text: str) -> str:
    """`text` with any credential value of the environment masked: a server may echo what it was sent."""
    for name in _SECRET_ENVS:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def publish(source: Path, target: str | RemotePath) -> Published:
    """Upload a local file (a compacted day file) to `target` so readers see all of it or none, idempotently.

    One PUT of the whole object (S3 replaces an object atomically: no reader sees a part of it) with
    its MD5, so the store rejects bytes damaged on the way; then the stored object is checked: its
    size and ETag must be the PUT's, and a Parquet file's footer must read back its row count. An
    object that already holds these bytes (same size and recorded MD5) is left alone, so a retry
    after any failure ends as one clean run does. Raises ObjectStoreError; the object then holds
    its earlier bytes or these, never a mix.
    """
    target = RemotePath(str(target))
    fs, path = filesystem(target)
    bucket, _, key = path.partition("/")
    if not key:
        raise ValueError(f"{target}: a published file needs a key, not just a bucket")
    data = Path(source).read_bytes()
    digest = hashlib.md5(data, usedforsecurity=False)
    rows = _rows(io.BytesIO(data)) if target.suffix == PARQUET else None
    with translated(target.url, missing=f"no bucket {bucket!r}"):
        stored = _head(fs, bucket, key)
        if stored and stored["ContentLength"] == len(data) and stored["Metadata"].get(MD5_META) == digest.hexdigest():
            return Published(target.url, len(data), rows, uploaded=False)
        put = fs.call_s3(
            "put_object",
            Bucket=bucket,
            Key=key,
            Body=data,
            Metadata={MD5_META: digest.hexdigest()},
            ContentMD5=base64.b64encode(digest.digest()).decode(),
        )
        _verify(fs, target, len(data), put["ETag"], rows)
    return Published(target.url, len(data), rows, uploaded=True)


def _head(fs: AbstractFileSystem, bucket: str, key: str) -> dict | None:
    try:
        return fs.call_s3("head_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None


def _verify(fs: AbstractFileSystem, target: RemotePath, size: int, etag: str, rows: int | None) -> None:
    """The object just put is there whole: the PUT's size and ETag, and (Parquet) its row count in the footer."""
    bucket, _, key = filesystem(target)[1].partition("/")
    stored = _head(fs, bucket, key)
    if stored is None or (stored["ContentLength"], stored["ETag"]) != (size, etag):
        found = "nothing" if stored is None else f"{stored['ContentLength']} bytes, ETag {stored['ETag']}"
        raise ObjectStoreError(
            f"{target}: holds {found} right after a PUT of {size} bytes, ETag {etag} "
            "(another writer of the same object?)"
        )
    if rows is not None:
        with fs.open(f"{bucket}/{key}", "rb") as fh:
            stored_rows = _rows(fh)
        if stored_rows != rows:
            raise ObjectStoreError(f"{target}: reads back {stored_rows} rows, not the {rows} of the local file")


def _rows(source: BinaryIO) -> int:
    """A Parquet file's row count, from its footer alone."""
    if pq is None:
        raise ObjectStoreError("reading Parquet row counts needs pyarrow (pip install 'ticket-ab[analysis]')")
    return pq.read_metadata(source).num_rows


def register_log_root(con: duckdb.DuckDBPyConnection, root: str | Path) -> duckdb.DuckDBPyConnection:
    """Let DuckDB read a log root: registers the root's fsspec filesystem on `con` when it is remote.

    Then `read_parquet('s3://bucket/prefix/requests/date=*/*.parquet', hive_partitioning=true)` goes
    through the same endpoint and credential chain as every other read here (DuckDB's own httpfs
    extension would need its own secrets and a download). A local root needs nothing. Takes the
    connection rather than making one, because the router's import closure reaches this module and
    must not import DuckDB.
    """
    if is_remote(root):
        fs, _ = filesystem(str(root))
        if not any(con.filesystem_is_registered(name) for name in _protocols(fs)):
            con.register_filesystem(fs)
    return con


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
