"""An object-store log root (`s3://bucket/prefix`) against moto's standalone S3 server: the archived days
list, read and query the same as the local days they were published from, and failures say where, not who."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import s3fs
from experiment_logs import LogSpec, Phase, write_ab_logs
from logfiles import append_rows, row
from s3server import FAKE_KEY_ID, FAKE_SECRET, moto_server, use_fake_credentials

from ticket_ab import requestlog
from ticket_ab.compact import compact_closed
from ticket_ab.dayfile import read_day_file
from ticket_ab.logstore import (
    FEEDBACK,
    KINDS,
    REQUESTS,
    compacted_file,
    csv_shards,
    day_file_glob,
    day_files,
    partition_dir,
    partitions,
    publish_day,
)
from ticket_ab.objectstore import ObjectStoreError, RemotePath, filesystem, open_file, register_log_root
from ticket_ab.requestlog import LOG_COLUMNS, REQUEST_COLUMNS

TODAY = date(2026, 12, 4)
DAYS = [date(2026, 11, 24), date(2026, 11, 25)]  # what `_local_logs` writes and compacts
OPEN_DAY = date(2026, 11, 26)  # written after compaction: stays in CSV shards


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server for the module (it takes seconds to start); each test gets its own bucket."""
    with moto_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        yield url


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty bucket on the module's server, and fake credentials in this test's environment."""
    use_fake_credentials(monkeypatch, endpoint, tmp_path)
    name = f"logs-{uuid.uuid4().hex[:12]}"
    filesystem(f"s3://{name}")[0].mkdir(name)
    yield name
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def local_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both logs over two closed, compacted days (written by the router's writer), plus an open day in CSV."""
    root = tmp_path_factory.mktemp("local") / "logs"
    write_ab_logs(root, LogSpec(phases=[Phase(2000), Phase(1500, mode="shadow")], step_s=30, feedback_rate=0.6))
    run = compact_closed(root, TODAY)
    assert {(d.kind, d.day) for d in run.days} == {(kind, day) for kind in KINDS for day in DAYS} and not run.failed
    append_rows(
        root, REQUEST_COLUMNS, [row(f"open-{i}", stamp=f"{OPEN_DAY}T10:00:{i:02d}.000+00:00") for i in range(5)]
    )
    return root


def _archive(local: Path, remote: str) -> None:
    """What an operator's archive job does: publish each compacted day, copy the CSV shards of the open days."""
    fs, _ = filesystem(remote)
    for kind in KINDS:
        for day, folder in partitions(local, kind):
            if compacted_file(local, kind, day).exists():
                publish_day(local, remote, kind, day)
            for shard in csv_shards(folder, kind):
                fs.put_file(str(shard), filesystem(partition_dir(remote, kind, day) / shard.name)[1])


def _stored(remote: RemotePath) -> tuple[bytes, str, object]:
    fs, path = filesystem(remote)
    info = fs.call_s3("head_object", Bucket=path.split("/", 1)[0], Key=path.split("/", 1)[1])
    return fs.cat_file(path), info["ETag"], info["LastModified"]


def test_partitions_lists_days_of_an_s3_root(local_logs: Path, bucket: str):
    remote = f"s3://{bucket}/archive/logs"
    _archive(local_logs, remote)

    for kind in KINDS:
        local_days = [day for day, _ in partitions(local_logs, kind)]
        assert [day for day, _ in partitions(remote, kind)] == local_days
        assert partitions(remote, kind, DAYS[1], DAYS[1]) == [(DAYS[1], partition_dir(remote, kind, DAYS[1]))]
    assert [str(folder) for _, folder in partitions(remote, REQUESTS)] == [
        f"{remote}/requests/date={day}" for day in (*DAYS, OPEN_DAY)
    ]


def test_day_files_of_an_s3_folder_list_the_day_file_first_then_the_shards(local_logs: Path, bucket: str):
    remote = f"s3://{bucket}/logs"
    _archive(local_logs, remote)
    shard = csv_shards(partition_dir(local_logs, REQUESTS, OPEN_DAY), REQUESTS)[0]
    filesystem(remote)[0].put_file(str(shard), f"{bucket}/logs/requests/date={DAYS[0]}/{shard.name}")

    listed = day_files(partition_dir(remote, REQUESTS, DAYS[0]), REQUESTS)

    assert [file.name for file in listed] == [f"requests-{DAYS[0]}.parquet", shard.name]
    assert listed[1].read_bytes() == shard.read_bytes()


def test_a_published_day_reads_back_the_same_rows_as_the_local_day(local_logs: Path, bucket: str):
    remote = f"s3://{bucket}/logs"
    for kind in KINDS:
        for day in DAYS:
            done = publish_day(local_logs, remote, kind, day)
            local = read_day_file(compacted_file(local_logs, kind, day), LOG_COLUMNS[kind])
            with open_file(compacted_file(remote, kind, day)) as fh:
                stored = read_day_file(fh, LOG_COLUMNS[kind])
            pd.testing.assert_frame_equal(stored.rows, local.rows)
            assert (stored.shards, stored.dropped) == (local.shards, local.dropped)
            assert (done.url, done.rows, done.uploaded) == (
                str(compacted_file(remote, kind, day)),
                len(local.rows),
                True,
            )


def test_publishing_a_day_twice_ends_in_the_same_state(local_logs: Path, bucket: str):
    remote = f"s3://{bucket}/logs"
    target = compacted_file(remote, REQUESTS, DAYS[0])
    filesystem(remote)[0].pipe_file(filesystem(target)[1], b"an earlier attempt's leftover")  # a retry's situation

    first = publish_day(local_logs, remote, REQUESTS, DAYS[0])
    after_first = _stored(target)
    second = publish_day(local_logs, remote, REQUESTS, DAYS[0])

    assert (first.uploaded, second.uploaded) == (True, False)
    assert _stored(target) == after_first  # same bytes, ETag and modification time: not uploaded again
    assert after_first[0] == Path(compacted_file(local_logs, REQUESTS, DAYS[0])).read_bytes()
    assert first.size == second.size == len(after_first[0]) and first.rows == second.rows
    assert filesystem(remote)[0].find(f"{bucket}/logs") == [filesystem(target)[1]]


def test_duckdb_reads_the_published_parquet_through_fsspec(local_logs: Path, bucket: str):
    remote = f"s3://{bucket}/prefix"
    _archive(local_logs, remote)
    expected = sum(len(read_day_file(compacted_file(local_logs, REQUESTS, day), REQUEST_COLUMNS).rows) for day in DAYS)

    con = register_log_root(duckdb.connect(), remote)
    register_log_root(con, remote)  # twice is harmless
    glob = day_file_glob(remote, REQUESTS)
    count = con.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning=true)").fetchall()[0][0]
    days = con.sql(f"select distinct date from read_parquet('{glob}', hive_partitioning=true) order by 1").fetchall()

    assert glob == f"{remote}/requests/date=*/requests-*.parquet"
    assert count == expected > 0
    assert [day for (day,) in days] == DAYS


def test_an_empty_prefix_of_an_existing_bucket_is_an_empty_log(bucket: str):
    assert partitions(f"s3://{bucket}/nothing/here", REQUESTS) == []
    assert day_files(partition_dir(f"s3://{bucket}/nothing", FEEDBACK, DAYS[0]), FEEDBACK) == []


def test_a_missing_bucket_is_a_one_line_error_naming_the_url(local_logs: Path, bucket: str, endpoint: str):
    remote = f"s3://{bucket}-missing/logs"
    with pytest.raises(ObjectStoreError) as listed:
        partitions(remote, REQUESTS)
    with pytest.raises(ObjectStoreError) as published:
        publish_day(local_logs, remote, REQUESTS, DAYS[0])

    assert str(listed.value) == f"{remote}/requests: no bucket '{bucket}-missing' at {endpoint}"
    assert (
        str(published.value)
        == f"{compacted_file(remote, REQUESTS, DAYS[0])}: no bucket '{bucket}-missing' at {endpoint}"
    )
    for error in (listed.value, published.value):
        assert "\n" not in str(error) and "botocore" not in _shown(error)


def test_credentials_are_in_no_error_message(
    local_logs: Path, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    missing = [
        _raised(lambda: partitions(f"s3://{bucket}-missing/logs", REQUESTS)),
        _raised(lambda: publish_day(local_logs, f"s3://{bucket}-missing/logs", REQUESTS, DAYS[0])),
    ]
    with monkeypatch.context() as without:
        without.delenv("AWS_ACCESS_KEY_ID")
        without.delenv("AWS_SECRET_ACCESS_KEY")
        s3fs.S3FileSystem.clear_instance_cache()
        anonymous = _raised(lambda: partitions(f"s3://{bucket}/logs", REQUESTS))
    with moto_server(tmp_path / "auth.log", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as checking:  # checks keys
        use_fake_credentials(monkeypatch, checking, tmp_path)
        denied = [
            _raised(lambda: partitions(f"s3://{bucket}/logs", REQUESTS)),
            _raised(lambda: publish_day(local_logs, f"s3://{bucket}/logs", REQUESTS, DAYS[0])),
        ]

    assert "no AWS credentials found" in str(anonymous)
    assert all("access denied" in str(error) for error in denied), denied
    for error in (*missing, anonymous, *denied):
        assert FAKE_KEY_ID not in _everything(error) and FAKE_SECRET not in _everything(error)


def test_read_requests_of_an_s3_root_equals_the_local_read(local_logs: Path, bucket: str):
    remote = f"s3://{bucket}/logs"
    _archive(local_logs, remote)
    for read in (requestlog.read_requests, requestlog.read_feedback):
        local, stored = read(local_logs), read(remote)
        pd.testing.assert_frame_equal(stored.rows, local.rows)
        assert stored.malformed == local.malformed


def _raised(action) -> ObjectStoreError:
    with pytest.raises(ObjectStoreError) as caught:
        action()
    return caught.value


def _shown(error: BaseException) -> str:
    """What a log shows of `error`: its traceback, with what it chains (the client's error is not shown)."""
    return "".join(traceback.format_exception(error))


def _everything(error: BaseException) -> str:
    """`error` and every exception behind it, shown or not: their tracebacks, messages and reprs."""
    text, seen = "", error
    while seen is not None:
        text += "".join(traceback.format_exception(seen)) + repr(seen) + repr(seen.args)
        seen = seen.__cause__ or seen.__context__
    return text
