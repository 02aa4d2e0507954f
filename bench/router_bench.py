"""Router vs `mlflow models serve` on the same registered champion: req/s, latency, overhead, RSS, and the
cost of client credentials and the rate limit.

      .venv/bin/python bench/router_bench.py [--n 2000] [--concurrency 8] [--workers 2] [--batches 40]

Starts a private MLflow server in a temp dir, registers one TF-IDF + LogisticRegression pipeline as
champion (and as challenger, so each router worker holds two models, as in production), then drives
the same N requests at concurrency C against (a) the router under gunicorn with router/gunicorn.conf.py
and (b) `mlflow models serve` with the same worker count, alternating over several rounds so that
background load drifting on a shared machine hits both alike; server CPU per request is reported
too, being far less sensitive to other load than req/s. Batch throughput is tickets/s through
`/predict` with `tickets` (BATCH per request, each assigned and logged). Overhead is measured
sequentially (concurrency 1, so queueing does not count): router p50 minus bare `predict_proba` p50.
A third server, `router+auth`, is the same router with a client token on every request and the
per-integration rate limit on (set far above the offered load, so every request pays for the check
and none is refused): its CPU per request against the plain router's is the price of credentials.
The client is a minimal keep-alive socket per thread with pre-encoded requests, so that it takes as
little as possible of the CPUs it shares with the server under test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from mirakuru import HTTPExecutor

from ops import servers
from ops.env import REPO, python_env
from ops.health import wait_until
from ops.ports import LOOPBACK, free_port
from retrain.ml.features import baseline_pipeline
from router.predictor import compile_scorer, pipeline_scorer
from ticket_ab import registry
from ticket_ab.schema import TOPICS
from ticket_ab.settings import Settings, get_settings

TARGET_SPEEDUP = 2.0  # the scale-out issue's bar: fixed before the runs it judges
TARGET_P99_MS = 20.0  # router p99 at concurrency 8
TARGET_OVERHEAD_MS = 1.5
TARGET_RSS_MB = 400.0
TARGET_BATCH_TPS = 3000.0  # the protocols issue's bar: tickets/s in batches of BATCH, fixed before the runs
TARGET_AUTH_CPU = 0.10  # issue 22's bar: credentials and the rate limit add at most 10% CPU per request
AUTH_TOKEN = "bench-client-token"
AUTH_RATE = 1e6  # tickets/s: the limit is checked on every request and never reached
BATCH = 256
WARMUP = 200
SEQUENTIAL = 500
MODEL = "bench-ticket-classifier"

_TOPIC_WORDS = {
    "access": "password login locked account permission sso mfa reset token expired directory",
    "billing": "invoice charge refund payment subscription receipt overcharged card statement tax",
    "email": "outlook mailbox inbox attachment spam smtp calendar signature shared folder quota",
    "hardware": "laptop monitor keyboard printer battery docking mouse screen charger fan",
    "hr_onboarding": "onboarding hire badge contract payroll orientation start manager equipment training",
    "network": "vpn wifi dns latency router firewall proxy ethernet gateway packet",
    "purchase": "license quote order vendor procurement seats budget renewal approval catalog",
    "software_bug": "crash exception freeze bug update regression hangs error stack release",
}
_FILLER = ("hello team please help since this morning we tried restarting twice and nothing changed it is "
           "urgent for our office the user reports that colleagues also see it thanks in advance").split()


def tickets(per_topic: int, seed: int) -> pd.DataFrame:
    """Helpdesk-like tickets of 20-40 words: a few topic words inside generic filler."""
    rng = random.Random(seed)
    rows = []
    for topic in TOPICS:
        words = _TOPIC_WORDS[topic].split()
        for _ in range(per_topic):
            text = rng.sample(_FILLER, rng.randint(15, 30)) + rng.sample(words, rng.randint(3, 6))
            rng.shuffle(text)
            rows.append({"text": " ".join(text) + f" ref {rng.randint(1000, 99999)}", "topic": topic})
    return pd.DataFrame(rows)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": statistics.median(samples_ms), "p95": cuts[94], "p99": cuts[98]}


def request_bytes(path: str, body: bytes, headers: str = "") -> bytes:
    """A complete keep-alive HTTP/1.1 POST, encoded once, outside the timed loop (`headers`: extra lines)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


def read_response(reader: Any) -> tuple[int, bytes]:
    """Status and body of one response (both servers answer with Content-Length, never chunked)."""
    status = int(reader.readline().split(b" ", 2)[1])
    length = None
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError("response without Content-Length; the benchmark client cannot read it")
    return status, reader.read(length)


def drive(port: int, path: str, bodies: list[bytes], concurrency: int, headers: str = "") -> dict[str, float]:
    """POST every body once from `concurrency` keep-alive sockets; req/s, latency percentiles, client CPU.

    The client shares the CPUs with the server under test, so it is kept minimal (pre-encoded requests,
    a ten-line response reader): an expensive client would add the same cost to both servers and
    squeeze their throughput ratio towards 1.
    """
    requests_ = [request_bytes(path, body, headers) for body in bodies]

    def run(offset: int) -> list[float]:
        latencies = []
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = sock.makefile("rb")
            for raw in requests_[offset::concurrency]:
                start = time.perf_counter()
                sock.sendall(raw)
                status, payload = read_response(reader)
                latencies.append((time.perf_counter() - start) * 1000.0)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {payload[:200]!r}")
        return latencies

    cpu_start, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [ms for batch in pool.map(run, range(concurrency)) for ms in batch]
    wall = time.perf_counter() - start
    client_ms = (time.process_time() - cpu_start) * 1000.0 / len(bodies)
    return {"rps": len(bodies) / wall, "client_cpu_ms": client_ms, **percentiles(latencies)}


def server_latency(port: int, bodies: list[bytes]) -> float:
    """p50 of the router's own latency_ms (request start to answer, inside the worker)."""
    values = []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        reader = sock.makefile("rb")
        for body in bodies:
            sock.sendall(request_bytes("/predict", body))
            values.append(json.loads(read_response(reader)[1])["latency_ms"])
    return statistics.median(values)


def median_round(runs: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median throughput (its own percentiles), CPU per request as the median of all."""
    ranked = sorted(runs, key=lambda run: run["rps"])
    return {**ranked[len(ranked) // 2], "cpu_ms": statistics.median(run["cpu_ms"] for run in runs)}


def bare_predict(score: Callable[[str], Any], texts: list[str], repeats: int) -> dict[str, float]:
    """One ticket scored in-process, no HTTP: the floor under any server's latency."""
    samples = []
    for i in range(repeats):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        score(text)
        samples.append((time.perf_counter() - start) * 1000.0)
    return percentiles(samples)


@dataclass(frozen=True)
class Server:
    """One server under test: where to send which pre-encoded requests."""

    name: str
    service: HTTPExecutor
    port: int
    path: str
    bodies: list[bytes]
    headers: str = ""  # extra request header lines, e.g. the client token


def start(server: servers.Server, log: Path, deadline_s: float) -> HTTPExecutor:
    """mirakuru starts `server` (output to `log`) and returns once its health URL answers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return HTTPExecutor(server.command, server.health_url, method="GET", timeout=deadline_s, envvars=server.env,
                            cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).start()


def server_tree(service: HTTPExecutor) -> list[psutil.Process]:
    """The server and all its descendants (mlflow serve runs uvicorn, which spawns the workers)."""
    assert service.process is not None
    root = psutil.Process(service.process.pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(service: HTTPExecutor) -> float:
    """User+system CPU of a whole server (all processes): contention from other load does not inflate it."""
    return sum(times.user + times.system for times in (p.cpu_times() for p in server_tree(service)))


def worker_rss_mb(service: HTTPExecutor) -> list[float]:
    """Resident memory of the server's workers (the leaves of its process tree, helpers excluded), in MB."""
    return [p.memory_info().rss / 2**20 for p in server_tree(service)
            if not p.children() and not any("resource_tracker" in part for part in p.cmdline())]


def wait_workers(router: HTTPExecutor, port: int, workers: int, deadline_s: float) -> None:
    """Until `workers` distinct worker pids have answered /ready (each loaded both models)."""
    seen: set[int] = set()

    def burst() -> bool:
        with ThreadPoolExecutor(8) as pool:
            for body in pool.map(lambda _: _get_json(port, "/ready"), range(16)):
                if body.get("ready") and body.get("challenger"):
                    seen.add(body["worker_pid"])
        return len(seen) >= workers

    wait_until(burst, deadline_s, f"all {workers} router workers are ready",
               failed=lambda: None if router.running() else "the router exited", interval_s=0)


def _get_json(port: int, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="measured requests per server (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes, both servers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per router worker (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measured runs per server (default 3)")
    parser.add_argument("--batches", type=int, default=40, help=f"measured {BATCH}-ticket requests (default 40)")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def publish_champion(settings: Settings, data: pd.DataFrame, seed: int) -> Any:
    """Register one pipeline as champion and challenger (each router worker holds two models, as in
    production); returns the model as the registry serves it."""
    pipeline = baseline_pipeline(seed).fit(data[["text"]], data["topic"])
    version = registry.publish(settings.tracking_uri, MODEL, pipeline, data[["text"]].head(3),
                               alias=registry.CHAMPION, why="router benchmark", tags={"purpose": "bench"})
    registry.move_alias(registry.connect(settings.tracking_uri), MODEL, registry.CHALLENGER, version,
                        why="router benchmark")
    return registry.load_version(MODEL, version)


def auth_settings(settings: Settings) -> Settings:
    """The same router with a client token and the rate limit on, in a home of its own, on another port."""
    return get_settings(home=settings.home / "auth", tracking_uri=settings.tracking_uri, model_name=MODEL,
                        router={**settings.router.model_dump(), "port": free_port(),
                                "client_tokens": f"bench:{AUTH_TOKEN}", "client_rate": AUTH_RATE})


def start_router(settings: Settings, args: argparse.Namespace, started: list[HTTPExecutor]) -> HTTPExecutor:
    """One router as the demo starts it, once every worker has loaded both models."""
    router = start(servers.router(settings), settings.home / "router.log", 120)
    started.append(router)
    wait_workers(router, settings.router.port, args.workers, 120)
    return router


def start_servers(settings: Settings, guarded_settings: Settings, args: argparse.Namespace, scorer_port: int,
                  started: list[HTTPExecutor]) -> tuple[HTTPExecutor, HTTPExecutor, HTTPExecutor]:
    """The router, the router with credentials on and `mlflow models serve`: same champion, same worker count."""
    router = start_router(settings, args, started)
    guarded = start_router(guarded_settings, args, started)
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", registry.model_uri(MODEL, registry.CHAMPION),
               "--env-manager", "local", "--workers", str(args.workers), "-p", str(scorer_port),
               "--host", LOOPBACK]
    scorer = start(servers.Server("mlflow serve", command, python_env({"MLFLOW_TRACKING_URI": settings.tracking_uri}),
                                  f"http://{LOOPBACK}:{scorer_port}/ping"), settings.home / "mlflow-serve.log", 180)
    started.append(scorer)
    return router, guarded, scorer


def measure(args: argparse.Namespace, servers: list[Server]) -> dict[str, Any]:
    """Warm up, then interleaved rounds in rotating order (drifting background load hits all alike), then a
    sequential run."""
    for server in servers:
        drive(server.port, server.path, server.bodies[:WARMUP], args.concurrency, server.headers)
    rounds: dict[str, list[dict[str, float]]] = {server.name: [] for server in servers}
    for round_ in range(args.rounds):
        for server in servers[round_ % len(servers):] + servers[:round_ % len(servers)]:  # no server always first
            cpu_before = cpu_seconds(server.service)
            loaded = drive(server.port, server.path, server.bodies, args.concurrency, server.headers)
            loaded["cpu_ms"] = (cpu_seconds(server.service) - cpu_before) * 1000.0 / len(server.bodies)
            rounds[server.name].append(loaded)
    return {server.name: {"load": median_round(rounds[server.name]), "rounds": rounds[server.name],
                          "seq": drive(server.port, server.path, server.bodies[:SEQUENTIAL], 1, server.headers)}
            for server in servers}


def bench(args: argparse.Namespace, settings: Settings, started: list[HTTPExecutor]) -> tuple[Any, ...]:
    """Everything measured, with the services it starts appended to `started` (the caller stops them)."""
    data = tickets(per_topic=400, seed=args.seed)
    texts = tickets(per_topic=50, seed=args.seed + 1)["text"].tolist()
    started.append(start(servers.mlflow(settings), settings.mlflow_dir / "server.log", 120))
    served = publish_champion(settings, data, args.seed)
    direct, scoring = compile_scorer(served)
    bare = {"pipeline": bare_predict(pipeline_scorer(served), texts, repeats=1000),
            scoring: bare_predict(direct, texts, repeats=1000)}
    scorer_port = free_port()
    guarded_settings = auth_settings(settings)
    router, guarded, scorer = start_servers(settings, guarded_settings, args, scorer_port, started)
    rng = random.Random(args.seed)
    router_bodies = [json.dumps({"text": rng.choice(texts), "customer_id": f"c-{i}"}).encode()
                     for i in range(args.n)]
    scorer_bodies = [json.dumps({"dataframe_records": [{"text": json.loads(b)["text"]}]}).encode()
                     for b in router_bodies]
    results = measure(args, [Server("router", router, settings.router.port, "/predict", router_bodies),
                             Server("router+auth", guarded, guarded_settings.router.port, "/predict", router_bodies,
                                    f"Authorization: Bearer {AUTH_TOKEN}\r\n"),
                             Server("mlflow serve", scorer, scorer_port, "/invocations", scorer_bodies)])
    inside = server_latency(settings.router.port, router_bodies[:SEQUENTIAL])
    results["router"]["batch"] = batch_throughput(settings.router.port, router_bodies, args)
    rss = {"router": worker_rss_mb(router), "router+auth": worker_rss_mb(guarded),
           "mlflow serve": worker_rss_mb(scorer)}
    return bare, results, inside, rss


def batch_throughput(port: int, bodies: list[bytes], args: argparse.Namespace) -> dict[str, float]:
    """Tickets/s through `/predict` in batches of BATCH from two clients per worker (one warm-up round)."""
    tickets_ = [json.loads(body) for body in bodies]
    batches = [json.dumps({"tickets": [tickets_[(i * BATCH + j) % len(tickets_)] for j in range(BATCH)]}).encode()
               for i in range(args.batches)]
    drive(port, "/predict", batches[: 2 * args.workers], 2 * args.workers)
    run = drive(port, "/predict", batches, 2 * args.workers)
    return {"tps": run["rps"] * BATCH, "p50": run["p50"], "p99": run["p99"]}


def main() -> int:
    args = parse_args()
    started: list[HTTPExecutor] = []
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp:
        settings = get_settings(home=Path(tmp), mlflow_port=free_port(), model_name=MODEL,
                                router={"host": LOOPBACK, "port": free_port(), "workers": args.workers,
                                        "threads": args.threads, "split_b": 0.5})
        try:
            bare, results, inside, rss = bench(args, settings, started)
        finally:
            for service in reversed(started):
                service.stop()
    report(args, bare, results, inside, rss)
    return 0


def report(args: argparse.Namespace, bare: dict[str, dict[str, float]], results: dict[str, Any], inside_ms: float,
           rss: dict[str, list[float]]) -> None:
    print(f"\nrouter benchmark: N={args.n} requests x {args.rounds} interleaved rounds, concurrency "
          f"{args.concurrency}, {args.workers} workers (router: gthread x {args.threads} threads, both models "
          f"loaded), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median round shown\n")
    print(f"{'server':<14}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}{'client':>8}   "
          f"{'seq p50':>8}{'seq p99':>8}   RSS/worker MB")
    for name, numbers in results.items():
        load, seq = numbers["load"], numbers["seq"]
        print(f"{name:<14}{load['rps']:>9.1f}{load['p50']:>9.2f}{load['p95']:>9.2f}{load['p99']:>9.2f}"
              f"{load['cpu_ms']:>12.2f}{load['client_cpu_ms']:>8.2f}   {seq['p50']:>8.2f}{seq['p99']:>8.2f}   "
              f"{', '.join(f'{mb:.0f}' for mb in rss[name])}")
    labels = {"pipeline": "pipeline.predict_proba on a 1-row DataFrame", "direct": "the router's direct scorer",
              "tfidf": "the router's hand-built TF-IDF scorer"}
    for path, numbers in bare.items():
        print(f"{'bare ' + path:<14}{'':>9}{numbers['p50']:>9.2f}{numbers['p95']:>9.2f}{numbers['p99']:>9.2f}"
              f"{'':>20}   ({labels.get(path, path)}, in-process, 1 ticket)")
    ratios = [r["rps"] / m["rps"] for r, m in zip(results["router"]["rounds"], results["mlflow serve"]["rounds"],
                                                  strict=True)]
    speedup = statistics.median(ratios)
    floor = min(numbers["p50"] for numbers in bare.values())
    overhead = results["router"]["seq"]["p50"] - bare["pipeline"]["p50"]
    worst_rss = max(rss["router"])
    p99 = results["router"]["load"]["p99"]
    print()
    efficiency = results["mlflow serve"]["load"]["cpu_ms"] / results["router"]["load"]["cpu_ms"]
    print(f"throughput router / mlflow serve   {speedup:5.2f}x   target >= {TARGET_SPEEDUP}x   "
          f"{'ok' if speedup >= TARGET_SPEEDUP else 'MISSED'}   "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; server CPU per request: {efficiency:.2f}x less)")
    print(f"worst round                        {min(ratios):5.2f}x")
    print(f"router p99 at concurrency {args.concurrency:<2}      {p99:5.2f} ms target <= {TARGET_P99_MS} ms "
          f"{'ok' if p99 <= TARGET_P99_MS else 'MISSED'}")
    print(f"router overhead (seq p50 - bare)   {overhead:5.2f} ms target <= {TARGET_OVERHEAD_MS} ms "
          f"{'ok' if overhead <= TARGET_OVERHEAD_MS else 'MISSED'}   (vs the fastest bare path: "
          f"{results['router']['seq']['p50'] - floor:.2f} ms; inside the worker: {inside_ms - floor:.2f} ms)")
    print(f"router RSS per worker (max)        {worst_rss:5.0f} MB target <= {TARGET_RSS_MB:.0f} MB "
          f"{'ok' if worst_rss <= TARGET_RSS_MB else 'MISSED'}")
    plain, guarded = (results[name]["load"]["cpu_ms"] for name in ("router", "router+auth"))
    rise = guarded / plain - 1
    per_round = [a["cpu_ms"] / p["cpu_ms"] - 1 for a, p in zip(results["router+auth"]["rounds"],
                                                               results["router"]["rounds"], strict=True)]
    print(f"credentials + rate limit CPU/req   {rise:+6.1%}   target <= +{TARGET_AUTH_CPU:.0%}   "
          f"{'ok' if rise <= TARGET_AUTH_CPU else 'MISSED'}   ({guarded:.3f} ms vs {plain:.3f} ms per request; "
          f"rounds: {', '.join(f'{r:+.1%}' for r in per_round)})")
    batch = results["router"]["batch"]
    print(f"router batch of {BATCH} tickets/request {batch['tps']:6.0f} tickets/s target >= {TARGET_BATCH_TPS:.0f} "
          f"{'ok' if batch['tps'] >= TARGET_BATCH_TPS else 'MISSED'}   (p50 {batch['p50']:.0f} ms, "
          f"p99 {batch['p99']:.0f} ms per request)")


if __name__ == "__main__":
    sys.exit(main())
