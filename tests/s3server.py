"""Test helper: moto's standalone S3 server as a real process, and fake AWS credentials for its clients.

A real server (not moto's in-process mock) because s3fs talks through aiobotocore, which the
in-process mock does not patch, and because a real HTTP endpoint is what an object-store log root
meets in production. The server runs in its own process group (its reloader or workers go with
it), is waited for by polling its API with a deadline, and gets an environment without the host's
AWS variables. Credentials reach the clients through monkeypatched environment variables only:
never a command line, which any local user can read in `ps`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import s3fs

from ops.ports import LOOPBACK, free_port

FAKE_KEY_ID = "AKIATICKETABFAKEKEY1"  # distinctive, so a test can assert they appear in no message
FAKE_SECRET = "ticket-ab-fake-secret-do-not-log-0123456789"
_READY_PATH = "/moto-api/"  # moto's dashboard: answers once the server serves requests


@contextmanager
def moto_server(log: Path, env: Mapping[str, str] | None = None, deadline_s: float = 60.0) -> Iterator[str]:
    """Run `python -m moto.server` on a free loopback port until the block ends; yields its endpoint URL.

    `env` adds variables for the server (e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 makes it check keys).
    """
    port = free_port()
    child_env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    child_env.update(env or {})
    command = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )
    endpoint = f"http://{LOOPBACK}:{port}"
    try:
        _wait_until_ready(process, endpoint + _READY_PATH, deadline_s, log)
        yield endpoint
    finally:
        _stop(process)


def _wait_until_ready(process: subprocess.Popen, url: str, deadline_s: float, log: Path) -> None:
    """Poll `url` until it answers 200; fail at once if the server exits, or at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode} before answering:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"moto server did not answer {url} within {deadline_s:.0f}s:\n{_tail(log)}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers; only this server's group."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def use_fake_credentials(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """Point the S3 clients of this test at `endpoint` with fake keys, and away from the host's AWS setup.

    The host's config files, profile, session token and instance metadata are all out of reach, so
    a test sees exactly these credentials (or none, once it deletes them). fsspec keeps one s3fs
    instance per endpoint, which holds the credentials it first saw: the cache is cleared, so this
    test's environment is the one used.
    """
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("TICKET_AB_S3_ENDPOINT_URL", endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
