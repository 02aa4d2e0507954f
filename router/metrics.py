"""Prometheus metrics that add up across gunicorn workers.

Under gunicorn every worker is its own process, so a per-process registry would show a random
worker's numbers on each scrape. `router/gunicorn.conf.py` sets PROMETHEUS_MULTIPROC_DIR before the
workers import prometheus_client; each worker then writes its samples to mmap files there and
/metrics merges them. Without that variable (tests, `flask run`) the default registry is used.
Labels are bounded (endpoint rule, variant, status, alias, reason, log, topic: the served
model's classes, and integration: the configured client tokens' names plus `anonymous`) so series
cannot explode. The log-failure children are created at import, so they
are exported as 0 from the first scrape: `increase()` needs a sample before the first loss to see it.
Every Grafana panel and alert rule in router/monitoring/ queries only these names (a test scrapes a
real router and checks).
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from ticket_ab import logstore

REQUESTS = Counter(
    "ticket_ab_requests_total", "HTTP requests by endpoint, A/B variant (- when none) and status code",
    ["endpoint", "variant", "status"],
)
LATENCY = Histogram(
    "ticket_ab_request_latency_seconds", "Time from request start to response, by endpoint and variant",
    ["endpoint", "variant"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FALLBACKS = Counter(
    "ticket_ab_fallbacks_total", "Challenger predictions that failed (the champion answered instead)", ["reason"],
)
CHAMPION_SCORE_FAILURES = Counter(
    "ticket_ab_champion_score_failures_total", "Challenger-served requests whose extra champion scoring (the logged "
    "champion_confidence, TICKET_AB_LOG_CHAMPION_CONFIDENCE) failed: answered, logged with that value blank",
)
MODEL_VERSION = Gauge(
    "ticket_ab_model_version", "Registry version loaded per alias in each worker (0: none)", ["alias"],
    multiprocess_mode="liveall",
)
MODEL_LOADS = Counter(
    "ticket_ab_model_loads_total", "Models loaded into a worker, by alias and where they came from",
    ["alias", "source"],
)
# `version` is bounded by the versions refused, which should be none: each is worth its own series.
MODEL_REFUSALS = Counter(
    "ticket_ab_model_refusals_total", "Registered versions a worker refused to unpickle, by alias, version and "
    "reason (unrecorded: no artifact digest on the version; mismatch: its files differ from the recorded digest)",
    ["alias", "version", "reason"],
)
LOG_WRITE_FAILURES = Counter(
    "ticket_ab_log_write_failures_total", "Rows lost because the log could not be written (disk full, ...), by log",
    ["log"],
)
for _log in (logstore.REQUESTS, logstore.FEEDBACK):
    LOG_WRITE_FAILURES.labels(log=_log)
CLIENT_REQUESTS = Counter(
    "ticket_ab_client_requests_total", "Scoring requests by integration (the client token's name, or anonymous) and "
    "status code", ["integration", "status"],
)
PREDICTIONS = Counter(
    "ticket_ab_predictions_total", "Answered predictions by assigned arm and predicted topic (a served model's class)",
    ["variant", "topic"],
)

__all__ = ["CHAMPION_SCORE_FAILURES", "CLIENT_REQUESTS", "CONTENT_TYPE", "FALLBACKS", "LATENCY", "LOG_WRITE_FAILURES",
           "MODEL_LOADS", "MODEL_REFUSALS", "MODEL_VERSION", "PREDICTIONS", "REQUESTS", "exposition"]


def exposition() -> bytes:
    """The text exposition: merged over all workers under gunicorn, this process otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
