"""The log writer across processes: parallel writers lose nothing, a writer killed mid-row leaves no torn
row, and a full file system loses only the row being written (real processes, so not in the unit tier)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from logfiles import row

from ops import env as services
from ticket_ab.logstore import REQUESTS, shard_files
from ticket_ab.logwriter import ShardedLog
from ticket_ab.requestlog import REQUEST_COLUMNS, read_requests

WRITER = """
import sys, threading
from ticket_ab.requestlog import REQUEST_COLUMNS
from ticket_ab.logwriter import ShardedLog
root, tag, threads, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = ShardedLog(root, "requests", REQUEST_COLUMNS)
def run(t):
    i = 0
    while rows < 0 or i < rows:
        log.append({"timestamp": "2026-11-24T11:00:00.000+00:00", "request_id": f"{tag}-{t}-{i}",
                    "variant": "A", "confidence": 0.5, "text": f"{tag}, \\"quoted\\"\\nrow {i} " + "x" * 3000})
        i += 1
workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
"""

FULL_DISK = """
import resource, signal, sys
from ticket_ab.requestlog import REQUEST_COLUMNS
from ticket_ab.logwriter import LogWriteError, ShardedLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
log = ShardedLog(sys.argv[1], "requests", REQUEST_COLUMNS)
row = {"timestamp": "2026-11-24T11:00:00.000+00:00", "variant": "A", "text": "y" * 500}
for i in range(3):
    log.append(row | {"request_id": f"kept-{i}"})
(path,) = log.files()
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 200, resource.RLIM_INFINITY))
try:
    log.append(row | {"request_id": "lost"})
except LogWriteError as exc:
    print("error:", exc.errno, log.check() is not None, path.stat().st_size, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print("after:", log.check(), flush=True)
log.append(row | {"request_id": "after"})
"""



def test_processes_and_threads_write_files_of_their_own_and_lose_nothing(tmp_path: Path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"p{n}", "3", "150"],
                              env=services.python_env()) for n in range(4)]
    local = ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS)
    for i in range(200):
        local.append(row(f"parent-{i}"))
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    read = read_requests(tmp_path)
    assert read.malformed == 0
    assert len(read.rows) == 4 * 3 * 150 + 200
    assert read.rows["request_id"].is_unique
    files = shard_files(tmp_path, REQUESTS)
    assert len(files) == 5 and all(f.read_text().count(",".join(REQUEST_COLUMNS)) == 1 for f in files)


def test_a_writer_killed_mid_stream_leaves_no_torn_row(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "victim", "2", "-1"],
                            env=services.python_env())
    deadline = time.monotonic() + 30
    while sum(f.stat().st_size for f in shard_files(tmp_path, REQUESTS)) < 300 * 3100:
        assert proc.poll() is None and time.monotonic() < deadline, "writer did not produce rows"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = read_requests(tmp_path)
    assert killed.malformed == 0
    assert len(killed.rows) >= 300
    ShardedLog(tmp_path, REQUESTS, REQUEST_COLUMNS).append(row("after-kill"))
    after = read_requests(tmp_path)
    assert (after.malformed, len(after.rows)) == (0, len(killed.rows) + 1)


def test_a_full_file_system_loses_only_the_row_being_written_and_says_so(tmp_path: Path):
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True,
                          env=services.python_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    error, after = done.stdout.splitlines()
    (path,) = shard_files(tmp_path, REQUESTS)
    assert error.split()[1:3] == ["27", "True"]  # EFBIG, and check() reports the log as failing
    assert after == "after: None"  # room again: the probe succeeds and the log is ready
    read = read_requests(tmp_path)
    assert (read.malformed, read.rows["request_id"].tolist()) == (0, ["kept-0", "kept-1", "kept-2", "after"])
    assert int(error.split()[3]) < path.stat().st_size  # nothing of the lost row stayed in the file
