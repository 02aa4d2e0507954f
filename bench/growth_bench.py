"""How the A/B report grows with the window: wall time and peak memory of `analysis/analysis.py` on windows of
1M, 10M and 30M requests (bar at 10M, issue 25: <= 60 s and <= 1 GiB on 2 cores, default options).

    python bench/growth_bench.py [--sizes 1000000,10000000,30000000] [--timeout 600] [--keep DIR] [--priorities]
        [-- ANALYSIS ARGS]

Each window is a week of split-mode traffic, champion v3 against challenger v4 at 0.5, written by
`bench/window_gen.py` as the router and compaction leave it: the last two days as two workers' CSV shards,
the five before as compacted Parquet day files. Customers scale as 300,000 per 10M requests (at least
1,000); feedback comes for a third of the requests. Generation is timed apart and not counted. With
--priorities both versions are two-head (every request logs a priority, every feedback row carries one): the
report's priority section runs on every labelled request.

The report runs as the operator runs it, in a process of its own: `python analysis/analysis.py --logs
WINDOW --out DIR --since <window start>` with the report's default options (arguments the bench does not
know, e.g. `--no-cupac`, are passed on). MLFLOW_TRACKING_URI points at a sqlite file that does not exist,
so CUPAC reports that it cannot score the champion and the comparison is unadjusted: the run reads, joins
and tests everything, but loads no model and scores no text (a real registry adds the champion's scoring of
the labelled texts). Wall time is the subprocess's, start to exit. Peak memory is the larger of (a) the sum
of the RSS of the process and its children, polled every 50 ms with psutil, and (b) the kernel's ru_maxrss
of the run (`os.wait4`'s rusage: the figure `resource.getrusage(RUSAGE_CHILDREN)` gives, but for this run
alone, where RUSAGE_CHILDREN keeps the largest child of the bench's whole life). A run past --timeout is
killed and reported as a timeout. The verdict is read from the report's ab_summary.json.

The last line reads `growth: 1M <wall> s / <MiB> MiB, 10M ..., 30M ...` (a timeout or failure as such).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import window_gen  # bench/window_gen.py: the scripts of bench/ import each other from their folder

REPO = Path(__file__).resolve().parents[1]
ANALYSIS = REPO / "analysis" / "analysis.py"
SIZES = (1_000_000, 10_000_000, 30_000_000)
CUSTOMERS_PER_10M, MIN_CUSTOMERS = 300_000, 1_000
LABELLED = 1 / 3
BAR_SIZE, BAR_WALL_S, BAR_PEAK_MIB = 10_000_000, 60.0, 1024.0  # issue 25's bar, fixed before the runs
POLL_S = 0.05
OK, TIMEOUT, FAILED = "ok", "timeout", "failed"


@dataclass
class Run:
    """One size's analysis run."""

    requests: int
    customers: int
    status: str  # OK, TIMEOUT or FAILED
    wall_s: float
    psutil_mib: float  # peak of the polled RSS sum of the process tree
    rusage_mib: float  # the kernel's ru_maxrss of the run (largest single process)
    exit_code: int | None = None
    timeout_s: float = 0.0
    verdict: str = ""
    adjusted: str = ""  # how the comparison was adjusted (CUPAC or unadjusted)
    generate_s: float = 0.0
    feedback: int = 0  # feedback rows in the window (about a third of the requests)

    @property
    def peak_mib(self) -> float:
        return max(self.psutil_mib, self.rusage_mib)


def customers_for(requests: int) -> int:
    """300,000 customers per 10M requests, at least MIN_CUSTOMERS (and no more than requests)."""
    return min(requests, max(MIN_CUSTOMERS, round(requests * CUSTOMERS_PER_10M / 10_000_000)))


def size_label(requests: int) -> str:
    """1M, 10M, 30M, 100k, 1.5M, 2500."""
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if requests >= unit:
            return f"{requests / unit:g}{suffix}"
    return str(requests)


def outcome(run: Run) -> str:
    """`<wall> s / <MiB> MiB`, or what happened instead."""
    if run.status == TIMEOUT:
        return f"timeout after {run.timeout_s:.0f} s"
    if run.status == FAILED:
        return f"failed (exit {run.exit_code})"
    return f"{run.wall_s:.1f} s / {run.peak_mib:.0f} MiB"


def summary_line(runs: list[Run]) -> str:
    """The last line: `growth: 1M 41.3 s / 2051 MiB, 10M timeout after 600 s, 30M failed (exit 2)`."""
    return "growth: " + ", ".join(f"{size_label(run.requests)} {outcome(run)}" for run in runs)


def tree_rss(process: psutil.Process) -> int:
    """Bytes resident in `process` and all its children now (0 for any that is gone)."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_analysis(
    logs: Path,
    out: Path,
    since: str,
    extra: list[str],
    env: dict[str, str],
    timeout_s: float,
    requests: int,
    customers: int,
) -> Run:
    """Run analysis.py on `logs` in its own process; its wall time, peak memory and verdict."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(ANALYSIS), "--logs", str(logs), "--out", str(out), "--since", since, *extra]
    peak, status, code = 0, OK, None
    with open(out / "stdout.txt", "wb") as stdout, open(out / "stderr.txt", "wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        watched = psutil.Process(proc.pid)
        try:
            while True:
                peak = max(peak, tree_rss(watched))
                pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - started > timeout_s:
                    status = TIMEOUT
                    _kill_tree(watched)
                    _, wait_status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(POLL_S)
        except BaseException:  # interrupted: leave no analysis running
            _kill_tree(watched)
            raise
        wall = time.perf_counter() - started
    proc.returncode = code = os.waitstatus_to_exitcode(wait_status)  # reaped here, not by Popen
    run = Run(requests, customers, status, wall, peak / 2**20, usage.ru_maxrss / 1024, code, timeout_s)
    if status == OK and code != 0:
        run.status = FAILED
    if run.status == OK:
        try:
            summary = json.loads((out / "ab_summary.json").read_text())
            run.verdict = summary["verdict"]["text"]
            adjustment = summary["comparison"].get("adjustment") or {}
            run.adjusted = "adjusted" if adjustment.get("applied") else "unadjusted"
        except (OSError, ValueError, KeyError) as exc:
            run.status, run.verdict = FAILED, f"no readable ab_summary.json ({exc})"
    return run


def _kill_tree(process: psutil.Process) -> None:
    try:
        members = [*process.children(recursive=True), process]
    except psutil.Error:
        members = [process]
    for member in members:
        try:
            member.kill()
        except psutil.Error:
            continue


def prepare_window(folder: Path, requests: int, customers: int, seed: int,
                   priorities: bool = False) -> tuple[str, float, int, bool]:
    """The window under `folder` (reused when it was written with the same parameters): its start as an ISO
    timestamp, seconds spent writing it, its feedback rows, and whether it was reused."""
    wanted = {
        "requests": requests,
        "customers": customers,
        "seed": seed,
        "labelled_share": LABELLED,
        "generator": window_gen.__doc__.splitlines()[0],
        "priorities": priorities,
    }
    marker = folder / "window.json"
    if marker.exists():
        written = json.loads(marker.read_text())
        if {k: written.get(k) for k in wanted} == wanted:
            return written["start"], 0.0, written["feedback"], True
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    window = window_gen.write_window(folder, requests, customers, labelled_share=LABELLED, seed=seed,
                                     priorities=priorities)
    seconds = time.perf_counter() - started
    marker.write_text(
        json.dumps(
            {
                **wanted,
                "start": window.start.isoformat(),
                "end": window.end.isoformat(),
                "feedback": window.feedback,
                "bytes": window.bytes,
            },
            indent=1,
        )
    )
    return window.start.isoformat(), seconds, window.feedback, False


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of request counts") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive request counts")
    return sizes


HEADER = (
    f"{'size':>5} {'requests':>11} {'customers':>9} {'feedback':>9} {'gen s':>6} {'wall s':>7} "
    f"{'peak MiB':>9} {'(psutil / rusage)':>18} {'MiB/1M':>7}  verdict"
)


def row_line(run: Run, generated: str) -> str:
    """One size's line under HEADER; `generated` is the generation's seconds (or `reused`)."""
    if run.status == OK:
        numbers = (
            f"{run.wall_s:>7.1f} {run.peak_mib:>9.0f} {f'{run.psutil_mib:.0f} / {run.rusage_mib:.0f}':>18} "
            f"{run.peak_mib / (run.requests / 1e6):>7.0f}  {run.verdict} ({run.adjusted})"
        )
    else:
        numbers = f"{run.wall_s:>7.1f} {run.peak_mib:>9.0f} {'':>18} {'':>7}  {outcome(run)}"
    return (
        f"{size_label(run.requests):>5} {run.requests:>11,} {run.customers:>9,} {run.feedback:>9,} "
        f"{generated:>6} {numbers}"
    )


def conclusion(runs: list[Run]) -> list[str]:
    """The bar at 10M, how wall time and memory grew from size to size, and the summary line."""
    lines = []
    bar = next((run for run in runs if run.requests == BAR_SIZE), None)
    if bar is None:
        lines.append(f"bar at {size_label(BAR_SIZE)}: not run (add {BAR_SIZE} to --sizes)")
    else:
        wall_ok = bar.status == OK and bar.wall_s <= BAR_WALL_S
        peak_ok = bar.status == OK and bar.peak_mib <= BAR_PEAK_MIB
        lines.append(
            f"bar at {size_label(BAR_SIZE)}: {outcome(bar)}; wall <= {BAR_WALL_S:.0f} s "
            f"{'ok' if wall_ok else 'MISSED'}, peak <= {BAR_PEAK_MIB:.0f} MiB {'ok' if peak_ok else 'MISSED'}"
        )
    done = [run for run in runs if run.status == OK]
    for small, large in zip(done, done[1:], strict=False):
        lines.append(
            f"scaling {size_label(small.requests)} -> {size_label(large.requests)}: requests "
            f"x{large.requests / small.requests:.1f}, wall x{large.wall_s / small.wall_s:.2f}, peak memory "
            f"x{large.peak_mib / small.peak_mib:.2f}"
        )
    return [*lines, summary_line(runs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=list(SIZES), help="requests per window, comma-separated")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per analysis run before it is killed")
    parser.add_argument("--keep", type=Path, help="write (and reuse) the windows and reports under DIR")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--priorities", action="store_true", help="two-head versions: priorities logged and labelled")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    print(
        f"analysis.py {' '.join(extra) or '(default options)'}; {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="growth-bench-") as tmp:
        base = args.keep or Path(tmp)
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{Path(tmp) / 'no-registry.db'}")
        print(HEADER)
        for requests in args.sizes:
            customers, label = customers_for(requests), size_label(requests)
            folder, out = base / f"window-{label}", base / f"report-{label}"
            since, gen_s, feedback, reused = prepare_window(folder, requests, customers, args.seed,
                                                            args.priorities)
            run = run_analysis(folder, out, since, extra, env, args.timeout, requests, customers)
            run.generate_s, run.feedback = gen_s, feedback
            runs.append(run)
            print(row_line(run, "reused" if reused else f"{gen_s:.1f}"), flush=True)
            if run.status == FAILED:
                tail = (out / "stderr.txt").read_text(errors="replace").strip().splitlines()
                print("      " + "\n      ".join(tail[-5:] or ["(no output on stderr)"]))
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    print()
    print("\n".join(conclusion(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
