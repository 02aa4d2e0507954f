"""Traced at the system-call level: every 202 from /feedback is sent only after an fdatasync that began
after its row was written (a real gunicorn router under strace, concurrent senders, group commit)."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from processes import start

from ops import servers
from tests.integration.router.router_harness import FEEDBACK_TOKEN, register, router_settings
from tests.unit.router.router_testkit import fitted_pipeline

SENDERS, PER_SENDER = 8, 15
LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)")
RESUMED = re.compile(r"^(?P<pid>\d+)\s+<\.\.\. (?P<call>\w+) resumed>.*= (?P<result>-?\d+)")
FEEDBACK_FILE = re.compile(r"^\d+<(?P<path>[^>]*/feedback/[^>]*\.csv)>")
REQUEST_ID = re.compile(r"fb-\d+-\d+")


@pytest.fixture(scope="module")
def traced(module_home, mlflow_server):
    """A router whose every write, fdatasync and send is recorded by strace, and the feedback it acknowledged."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace not found: run `make system-deps` (installs Debian's strace package)")
    settings = router_settings(module_home, mlflow_server.uri, "router-durability", workers=1, threads=8)
    register(settings, fitted_pipeline(seed=0), "champion")
    trace = module_home / "router.strace"
    server = servers.router(settings)
    server = replace(server, command=[strace, "-f", "-y", "-s", "400", "-o", str(trace), "-e",
                                      "trace=write,writev,fdatasync,fsync,sendto,sendmsg", *server.command])
    running = start(server, module_home / "traced-router.log")
    url = f"http://127.0.0.1:{settings.router.port}"
    try:
        ids = [requests.post(f"{url}/predict", json={"text": "vpn drops"}, timeout=30).json()["request_id"]]

        def send(sender: int) -> list[str]:
            acknowledged = []
            with requests.Session() as session:
                for i in range(PER_SENDER):
                    request_id = f"fb-{sender}-{i}"
                    answer = session.post(f"{url}/feedback", json={"request_id": request_id, "label": "network"},
                                          headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"}, timeout=30)
                    if answer.status_code == 202:
                        acknowledged.append(request_id)
            return acknowledged

        with ThreadPoolExecutor(SENDERS) as pool:
            acknowledged = [rid for batch in pool.map(send, range(SENDERS)) for rid in batch]
    finally:
        running.stop()
    assert ids and len(acknowledged) == SENDERS * PER_SENDER
    return trace.read_text(errors="replace").splitlines(), acknowledged


def _events(lines: list[str]) -> tuple[dict[str, int], list[tuple[int, int, str]], dict[str, int]]:
    """(request id -> line its row was written, [(sync start, sync end, file)], request id -> line its 202 was sent)."""
    written, syncs, answered = {}, [], {}
    open_syncs: dict[str, tuple[int, str]] = {}
    for index, line in enumerate(lines):
        resumed = RESUMED.match(line)
        if resumed and resumed["call"] == "fdatasync" and resumed["pid"] in open_syncs:
            start_line, path = open_syncs.pop(resumed["pid"])
            if resumed["result"] == "0":
                syncs.append((start_line, index, path))
            continue
        match = LINE.match(line)
        if not match:
            continue
        target = FEEDBACK_FILE.match(match["args"])
        if match["call"] == "write" and target:
            written.update(dict.fromkeys(REQUEST_ID.findall(match["args"]), index))
        elif match["call"] == "fdatasync" and target:
            if "<unfinished" in line:
                open_syncs[match["pid"]] = (index, target["path"])
            elif line.rstrip().endswith("= 0"):
                syncs.append((index, index, target["path"]))
        elif match["call"] in ("sendto", "sendmsg", "writev", "write") and "accepted" in match["args"]:
            answered.update({rid: index for rid in REQUEST_ID.findall(match["args"]) if rid not in answered})
    return written, syncs, answered


def test_every_acknowledged_feedback_row_was_synced_before_its_202_was_sent(traced):
    lines, acknowledged = traced
    written, syncs, answered = _events(lines)
    assert set(acknowledged) <= set(written), "an acknowledged row was never written to the feedback log"
    assert set(acknowledged) <= set(answered), "the trace misses some 202 answers"
    unsynced = [rid for rid in acknowledged
                if not any(written[rid] < begun and ended < answered[rid] for begun, ended, _ in syncs)]
    assert unsynced == [], f"{len(unsynced)} 202s were sent before an fsync covered their row: {unsynced[:5]}"


def test_concurrent_feedback_shares_fsyncs(traced):
    lines, acknowledged = traced
    _, syncs, _ = _events(lines)
    assert 0 < len(syncs) <= len(acknowledged)
    print(f"\n{len(acknowledged)} acknowledged feedback rows, {len(syncs)} fdatasyncs of the feedback log")


def test_the_trace_is_of_the_feedback_log(traced, module_home):
    lines, _ = traced
    paths = {m["path"] for line in lines if (m := FEEDBACK_FILE.search(line.split("(", 1)[-1]))}
    assert paths and all(Path(p).is_relative_to(module_home) for p in paths)
