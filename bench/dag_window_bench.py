"""How the DAG's window read grows with the window: wall time and peak memory of `retrain.tasks.window.collect`
(the DAG's first task's read: both logs, the guards, the drift sample) on windows of the given sizes.

    python bench/dag_window_bench.py [--sizes 100000,1000000] [--folder /tmp/dagwin] [--root WINDOW]

Each window is `bench/growth_bench.py`'s (written by `bench/window_gen.py` as the router and compaction leave
it: a week of traffic, the last two days CSV shards, the days before compacted Parquet; feedback for a third
of the requests), written under --folder once per size and reused while its parameters are the same;
--root measures a window already written instead. Generation is not timed.

Each read runs in a process of its own, with the environment's settings (TICKET_AB_WINDOW_SAMPLE_ROWS,
TICKET_AB_TEST_MEMORY_MB, TICKET_AB_SEED), from no watermark (the whole window) and no settle time. Wall time
is the read's; peak memory the process' high-water mark (interpreter and libraries included; the first line
shows them alone). The memory should grow with the labelled tickets (kept with their texts) and not with the rest
of the window: compare the MiB per labelled ticket across sizes.

The last line reads `dag window: <N> requests, <s> s, <MiB> MiB peak` for the largest size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import growth_bench  # bench/growth_bench.py: the scripts of bench/ import each other from their folder

from retrain.tasks import window as win
from ticket_ab.settings import get_settings

REPO = Path(__file__).resolve().parents[1]


def measure(root: Path) -> dict[str, float]:
    """Read the window under `root` as the DAG does; the counts, wall seconds and this process' peak MiB."""
    settings = get_settings()
    started = time.perf_counter()
    window = win.collect(root, root / "no-incoming", win.Watermark(), settings.feedback)
    seconds = time.perf_counter() - started
    stats = window.stats
    return {"requests": stats["requests_read"], "router_rows": stats["router_rows"], "labelled": stats["labelled"],
            "kept_rows": len(window.frame), "sample_rows": stats["sample_rows"], "seconds": seconds,
            "peak_mib": peak_mib()}


def baseline() -> dict[str, float]:
    """The interpreter with the bench's imports and nothing read."""
    return {"peak_mib": peak_mib()}


def peak_mib() -> float:
    """This process' peak resident memory: Linux's VmHWM, which starts afresh at exec (`ru_maxrss` keeps the
    forking parent's peak across exec, so a child of a big parent would report the parent's), else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(args: list[str]) -> dict[str, float]:
    """One measurement in a fresh process, so each peak is its own."""
    done = subprocess.run([sys.executable, __file__, *args], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"measurement failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(size: str, run: dict[str, float], base_mib: float) -> str:
    """A size's figures; the last two are the peak above the interpreter's, in all and per 100k labelled."""
    above = run["peak_mib"] - base_mib
    return (f"{size:>10} {run['requests']:>10,} {run['labelled']:>9,} {run['kept_rows']:>9,} {run['seconds']:>7.1f} "
            f"{run['peak_mib']:>9.0f} {above:>10.0f} {above / max(run['labelled'], 1) * 1e5:>13.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated request counts")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/dagwin"), help="where the windows are written")
    parser.add_argument("--root", type=Path, help="measure this window (a log root) instead of writing any")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's side
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure or args.baseline:
        print(json.dumps(measure(args.measure) if args.measure else baseline()))
        return 0
    roots = [(args.root.name, args.root)] if args.root else []
    for size in [] if args.root else [int(float(s)) for s in args.sizes.split(",") if s.strip()]:
        folder = args.folder / growth_bench.size_label(size)
        _, seconds, _, reused = growth_bench.prepare_window(folder, size, growth_bench.customers_for(size), args.seed)
        print(f"window {growth_bench.size_label(size)}: {'reused' if reused else f'written in {seconds:.0f} s'} "
              f"({folder})", flush=True)
        roots.append((growth_bench.size_label(size), folder))
    base_mib = in_child(["--baseline"])["peak_mib"]
    print(f"interpreter and imports alone: {base_mib:.0f} MiB")
    print(f"{'window':>10} {'requests':>10} {'labelled':>9} {'kept':>9} {'wall s':>7} {'peak MiB':>9} "
          f"{'above base':>10} {'/100k label':>13}")
    runs = []
    for size, root in roots:
        runs.append(in_child(["--measure", str(root)]))
        print(row(size, runs[-1], base_mib), flush=True)
    last = runs[-1]
    print(f"dag window: {last['requests']} requests, {last['seconds']:.1f} s, {last['peak_mib']:.0f} MiB peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
