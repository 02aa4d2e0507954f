"""What logging the champion's confidence on every request costs: router CPU per request with
TICKET_AB_LOG_CHAMPION_CONFIDENCE on vs off, at a 50/50 split.

      .venv/bin/python bench/champion_confidence_bench.py [--model svm_wc] [--n 1500] [--rounds 3] [--workers 2]

With the setting on, a request the challenger answers is scored by the champion too, so that its log row
carries the A/B report's CUPAC covariate (analysis.covariate) and a window of millions needs no offline
scoring. The extra cost is one champion scoring per challenger request, so it grows with the model: the
default `--model` is the AutoML winner as it is served (`svm_wc`, calibrated, word + character n-grams;
about 0.35 ms a ticket, bench/RESULTS.md), `vote_wc` the costliest candidate, `baseline` router_bench's
TF-IDF + LogisticRegression (about 0.05 ms). The machinery is bench/router_bench.py's: a private MLflow
server, the model fitted on its synthetic tickets and registered as champion and as challenger (two models
of the same cost per ticket), and here two routers under gunicorn that differ only in the setting, driven
with the same requests in interleaved rounds of rotating order. The measure is server CPU per request
(user + system of the router's whole process tree), far less sensitive to other load on a shared machine
than req/s. The logs are then read back: the
split must be about even, and champion_confidence filled on every row with the setting on and on the
champion's rows only with it off, so the number is the cost of what the setting does. The bar,
TARGET_EXTRA_CPU, was fixed before the run: the setting defaults to on only if it is met.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from mirakuru import HTTPExecutor
from router_bench import (  # bench/router_bench.py: the scripts of bench/ import each other from their folder
    MODEL,
    Server,
    measure,
    start,
    start_router,
    tickets,
)

from ops import servers
from ops.ports import LOOPBACK, free_port
from retrain.ml.automl import served_pipeline
from retrain.ml.candidates import CANDIDATES
from retrain.ml.features import baseline_pipeline
from ticket_ab import registry
from ticket_ab.names import A, B
from ticket_ab.requestlog import read_requests
from ticket_ab.settings import Settings, get_settings

TARGET_EXTRA_CPU = 0.25  # at most 25% more router CPU per request at 50/50, or the setting defaults to off
SPLIT_B = 0.5
ON, OFF = "covariate on", "covariate off"
BASELINE = "baseline"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=[BASELINE, *CANDIDATES], default="svm_wc",
                        help="the model served as champion and challenger (default svm_wc, the AutoML winner)")
    parser.add_argument("--n", type=int, default=1500, help="measured requests per router and round (default 1500)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measured rounds (default 3)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="router worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per router worker (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def router_settings(home: Path, args: argparse.Namespace, log_champion: bool, tracking_uri: str = "",
                    mlflow_port: int | None = None) -> Settings:
    """A router at a fixed 50/50 split (no rollout ramp) on a free loopback port, in a home of its own."""
    extra: dict[str, Any] = {"tracking_uri": tracking_uri} if tracking_uri else {"mlflow_port": mlflow_port}
    return get_settings(home=home, model_name=MODEL, rollout={"start": "configured"}, **extra,
                        router={"host": LOOPBACK, "port": free_port(), "workers": args.workers,
                                "threads": args.threads, "split_b": SPLIT_B, "log_champion_confidence": log_champion})


def publish(settings: Settings, model: str, data: pd.DataFrame, seed: int) -> None:
    """Fit `model` as it is served and register it as champion and as challenger (each worker holds two models)."""
    pipeline = baseline_pipeline(seed) if model == BASELINE else served_pipeline(model, seed=seed)
    version = registry.publish(settings.tracking_uri, MODEL, pipeline.fit(data[["text"]], data["topic"]),
                               data[["text"]].head(3), alias=registry.CHAMPION, why="champion_confidence benchmark",
                               tags={"purpose": "bench"})
    registry.move_alias(registry.connect(settings.tracking_uri), MODEL, registry.CHALLENGER, version,
                        why="champion_confidence benchmark")


def logged(settings: Settings) -> dict[str, float]:
    """Share of B rows, and the share of A and of B rows that carry a champion_confidence."""
    rows = read_requests(settings.logs_dir).rows
    filled = rows["champion_confidence"].notna()
    return {"rows": len(rows), "share_b": float((rows["variant"] == B).mean()),
            **{f"filled_{arm.lower()}": float(filled[rows["variant"] == arm].mean()) for arm in (A, B)}}


def bench(args: argparse.Namespace, tmp: Path, started: list[HTTPExecutor]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The measured rounds of both routers, and what each logged (services appended to `started`)."""
    base = router_settings(tmp / "mlflow", args, log_champion=False, mlflow_port=free_port())
    started.append(start(servers.mlflow(base), base.mlflow_dir / "server.log", 120))
    publish(base, args.model, tickets(per_topic=400, seed=args.seed), args.seed)
    texts = tickets(per_topic=50, seed=args.seed + 1)["text"].tolist()
    rng = random.Random(args.seed)
    bodies = [json.dumps({"text": rng.choice(texts), "customer_id": f"c-{i}"}).encode() for i in range(args.n)]
    homes = {ON: router_settings(tmp / "on", args, True, base.tracking_uri),
             OFF: router_settings(tmp / "off", args, False, base.tracking_uri)}
    routers = [Server(name, start_router(settings, args, started), settings.router.port, "/predict", bodies)
               for name, settings in homes.items()]
    results = measure(args, routers)
    for service in reversed(started):  # the workers close their logs before they are read
        service.stop()
    return results, {name: logged(settings) for name, settings in homes.items()}


def main() -> int:
    args = parse_args()
    started: list[HTTPExecutor] = []
    with tempfile.TemporaryDirectory(prefix="champion-confidence-bench-") as tmp:
        try:
            results, logs = bench(args, Path(tmp), started)
        finally:
            for service in reversed(started):
                service.stop()
    report(args, results, logs)
    return 0


def report(args: argparse.Namespace, results: dict[str, Any], logs: dict[str, dict[str, float]]) -> None:
    print(f"\nchampion_confidence benchmark: model {args.model}, N={args.n} requests x {args.rounds} interleaved "
          f"rounds, concurrency {args.concurrency}, {args.workers} workers x {args.threads} threads, split {SPLIT_B}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    print(f"{'router':<15}{'CPU ms/req':>11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'seq p50':>9}   logged rows: "
          "share B, champion_confidence filled on A / B")
    for name, numbers in results.items():
        load, seq, log = numbers["load"], numbers["seq"], logs[name]
        print(f"{name:<15}{load['cpu_ms']:>11.3f}{load['rps']:>9.1f}{load['p50']:>9.2f}{load['p99']:>9.2f}"
              f"{seq['p50']:>9.2f}   {log['rows']} rows: {log['share_b']:.1%} B, filled {log['filled_a']:.0%} / "
              f"{log['filled_b']:.0%}")
    per_round = [on["cpu_ms"] / off["cpu_ms"] - 1 for on, off in zip(results[ON]["rounds"], results[OFF]["rounds"],
                                                                       strict=True)]
    rise = statistics.median(per_round)
    extra_ms = results[ON]["load"]["cpu_ms"] - results[OFF]["load"]["cpu_ms"]
    print(f"\nextra CPU per request with the setting on   {rise:+6.1%} (median of rounds: "
          f"{', '.join(f'{r:+.1%}' for r in per_round)}; {extra_ms:+.3f} ms)   target <= +{TARGET_EXTRA_CPU:.0%}   "
          f"{'ok: default on' if rise <= TARGET_EXTRA_CPU else 'MISSED: default off'}")


if __name__ == "__main__":
    sys.exit(main())
