"""`make bench`: run every bench/*_bench.py (and ab_calibration.py) and collect what they print into bench/RESULTS.md.

Benchmarks print numbers; they do not pass or fail. The file records when and on what machine
they ran, so a number in the README can always be traced to a run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ops.env import REPO, python_env

BENCH = REPO / "bench"


def machine() -> str:
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0) if Path("/proc/meminfo").exists() else 0
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB, "
            f"Python {platform.python_version()}")


def main() -> int:
    scripts = sorted([*BENCH.glob("*_bench.py"), BENCH / "ab_calibration.py"])
    sections = []
    failed = []
    for script in scripts:
        print(f"==> {script.name}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=REPO, env=python_env(), text=True,
                                capture_output=True)
        seconds = time.perf_counter() - started
        sys.stdout.write(result.stdout)
        status = "ok" if result.returncode == 0 else f"exit {result.returncode}"
        if result.returncode != 0:
            failed.append(script.name)
            sys.stderr.write(result.stderr[-3000:])
        sections.append(f"## {script.name} ({status}, {seconds:.0f} s)\n\n```\n{result.stdout.strip()}\n```\n")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"# Benchmark results\n\nRun {stamp} on {machine()} by `make bench`.\n\n"
    out = BENCH / "RESULTS.md"
    out.write_text(header + "\n".join(sections))
    print(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
