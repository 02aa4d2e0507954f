"""Object-store log roots without a server: which roots are remote, how their paths and endpoint are
named, and what an error may say (the URL and the endpoint, never a credential)."""

from __future__ import annotations

import inspect
from datetime import date
from pathlib import Path

import botocore.exceptions
import duckdb
import pytest
import s3fs

from ticket_ab import objectstore
from ticket_ab.logstore import (
    REQUESTS,
    compacted_file,
    day_file_glob,
    expire,
    partition_dir,
    partitions,
    publish_day,
)
from ticket_ab.objectstore import (
    ObjectStoreError,
    RemotePath,
    filesystem,
    is_remote,
    open_file,
    register_log_root,
    translated,
)

DAY = date(2026, 11, 24)
SECRET = "wJalrXUtnFEMI-not-a-real-secret"


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No endpoint or credential of the host leaks in; every test starts from fresh s3fs instances."""
    for name in ("TICKET_AB_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def test_only_an_s3_url_string_is_a_remote_root(tmp_path):
    assert is_remote("s3://bucket/logs") and is_remote(RemotePath("s3://bucket"))
    assert not is_remote(str(tmp_path)) and not is_remote(tmp_path)
    assert not is_remote(Path("s3://bucket/logs"))  # Path folded the `//`: no longer a URL
    assert not is_remote("gs://bucket/logs") and not is_remote("S3://bucket")


def test_a_remote_path_has_the_name_suffix_children_and_order_a_reader_uses():
    folder = RemotePath("s3://bucket/logs/requests/date=2026-11-24/")
    day_file = folder / "requests-2026-11-24.parquet"

    assert str(folder) == "s3://bucket/logs/requests/date=2026-11-24" and folder.name == "date=2026-11-24"
    assert (day_file.name, day_file.suffix) == ("requests-2026-11-24.parquet", ".parquet")
    shards = [folder / "requests-b-2-x-0001.csv", folder / "requests-a-9-x-0002.csv"]
    assert [s.name for s in sorted(shards)] == [p.name for p in sorted(Path("/d") / s.name for s in shards)]
    with pytest.raises(ValueError, match="not an s3:// URL"):
        RemotePath("/var/log/ticket-ab")


def test_an_s3_roots_folders_and_day_files_are_urls_in_the_local_layout(tmp_path):
    root = "s3://bucket/archive/logs"
    assert partition_dir(root, REQUESTS, DAY) == RemotePath(f"{root}/requests/date=2026-11-24")
    assert str(compacted_file(root, REQUESTS, DAY)) == f"{root}/requests/date=2026-11-24/requests-2026-11-24.parquet"
    local = compacted_file(tmp_path, REQUESTS, DAY)
    assert local == tmp_path / "requests" / "date=2026-11-24" / "requests-2026-11-24.parquet"
    assert day_file_glob(root, REQUESTS) == f"{root}/requests/date=*/requests-*.parquet"
    assert day_file_glob(tmp_path, REQUESTS) == f"{tmp_path}/requests/date=*/requests-*.parquet"


def test_an_s3_url_turned_into_a_path_is_refused_instead_of_read_as_an_empty_log():
    with pytest.raises(ValueError, match="pass the URL as a string"):
        partitions(Path("s3://bucket/logs"), REQUESTS)


def test_retention_refuses_an_object_store_root():
    with pytest.raises(ValueError, match="lifecycle rule"):
        expire("s3://bucket/logs", 30, today=DAY, keep_from=DAY)


def test_only_a_local_day_file_is_published(tmp_path):
    with pytest.raises(ValueError, match="not an s3:// URL"):
        publish_day(tmp_path, str(tmp_path / "elsewhere"), REQUESTS, DAY)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),  # AWS itself
        ({"AWS_ENDPOINT_URL": "http://aws-general:9000"}, "http://aws-general:9000"),
        ({"AWS_ENDPOINT_URL": "http://general:1", "AWS_ENDPOINT_URL_S3": "http://s3-only:2"}, "http://s3-only:2"),
        ({"AWS_ENDPOINT_URL": "http://general:1", "TICKET_AB_S3_ENDPOINT_URL": "http://ours:3"}, "http://ours:3"),
    ],
)
def test_filesystem_takes_the_endpoint_from_the_environment_ours_first(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    fs, path = filesystem("s3://bucket/pre/fix/")

    assert path == "bucket/pre/fix" and "s3" in fs.protocol
    assert fs.endpoint_url == expected


def test_filesystem_takes_no_credentials_and_holds_none_in_its_options(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNITTESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert list(inspect.signature(filesystem).parameters) == ["root"]
    fs, _ = filesystem("s3://bucket")
    assert SECRET not in repr(fs.storage_options) and "AKIAUNITTESTKEY" not in repr(fs.storage_options)


@pytest.mark.parametrize("url", ["s3://", "s3:///logs"])
def test_a_url_without_a_bucket_is_refused(url):
    with pytest.raises(ValueError, match="names no bucket"):
        filesystem(url)


def _translate(error: BaseException, missing: str | None = None) -> BaseException:
    with pytest.raises(BaseException) as caught, translated("s3://bucket/logs", missing=missing):
        raise error
    return caught.value


def test_client_errors_become_one_line_errors_naming_the_url_and_endpoint_not_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("TICKET_AB_S3_ENDPOINT_URL", "http://operator:hunter22@minio.internal:9000")

    denied = _translate(PermissionError(f"signature mismatch for {SECRET}"))
    anonymous = _translate(botocore.exceptions.NoCredentialsError())
    unreachable = _translate(botocore.exceptions.EndpointConnectionError(endpoint_url="http://minio.internal:9000"))

    assert str(denied) == "s3://bucket/logs: access denied by http://minio.internal:9000: signature mismatch for ***"
    assert str(anonymous).startswith("s3://bucket/logs: no AWS credentials found: set AWS_ACCESS_KEY_ID")
    assert "EndpointConnectionError" in str(unreachable) and str(unreachable).startswith("s3://bucket/logs: ")
    for error in (denied, anonymous, unreachable):
        assert isinstance(error, ObjectStoreError) and error.__cause__ is None and error.__suppress_context__
        assert "hunter22" not in str(error) and SECRET not in str(error)


def test_a_missing_file_stays_a_missing_file_unless_the_caller_says_what_it_means():
    assert type(_translate(FileNotFoundError("bucket/logs/x"))) is FileNotFoundError  # a reader re-lists its day
    assert str(_translate(FileNotFoundError("x"), missing="no bucket 'bucket'")) == (
        "s3://bucket/logs: no bucket 'bucket' at AWS S3"
    )
    assert type(_translate(ValueError("a bug of ours"))) is ValueError  # not the client's: not hidden


def test_open_file_opens_a_local_file_for_binary_reading(tmp_path):
    (tmp_path / "f.parquet").write_bytes(b"PAR1")
    with open_file(tmp_path / "f.parquet") as fh:
        assert fh.read() == b"PAR1"
    with pytest.raises(FileNotFoundError):
        open_file(tmp_path / "gone.parquet")


def test_duckdb_gets_the_s3_filesystem_only_for_a_remote_root(tmp_path):
    local, remote = duckdb.connect(), duckdb.connect()
    assert register_log_root(local, tmp_path) is local and local.list_filesystems() == []
    register_log_root(remote, "s3://bucket/logs")
    register_log_root(remote, "s3://bucket/logs")  # twice is harmless
    assert remote.filesystem_is_registered("s3")


def test_a_missing_client_library_is_named_with_the_install_command(monkeypatch):
    monkeypatch.setattr(objectstore, "fsspec", None)
    with pytest.raises(ObjectStoreError, match=r"s3://bucket/logs: .*needs fsspec and s3fs .*ticket-ab\[analysis\]"):
        filesystem("s3://bucket/logs")
