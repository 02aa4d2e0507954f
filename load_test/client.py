"""How the load test talks to the router: worker threads with one requests.Session each.

Bounded twice: no more than the planned requests, and no new request after `max_seconds` (each
request's timeout is also cut to the time left). A `/predict` over the router's rate limit (429) is
sent again after its `Retry-After`, as a well-behaved integration would, while time is left; the
waits are counted (`throttled`), not taken for errors. Only the given base URL is contacted: sessions
ignore proxy settings from the environment and redirects are not followed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import requests

from load_test.traffic import FEEDBACK_SOURCE, Planned


class Unreachable(RuntimeError):
    """The router cannot be used; the message is the one line to print."""


@dataclass(frozen=True)
class Result:
    index: int
    status: int | None  # HTTP status of /predict; None when no response came back
    error: str  # "" on 200, else a short reason ("connection refused", "timeout", "HTTP 503: ...")
    latency_ms: float  # client-side round trip
    variant: str | None = None
    request_id: str | None = None
    feedback_planned: bool = False
    feedback_status: int | None = None  # None: not sent (not planned, or /predict failed) or no response
    feedback_error: str = ""
    throttled: int = 0  # 429 answers waited out before this result


@dataclass(frozen=True)
class Run:
    results: list[Result]
    elapsed_s: float
    stopped_by: str  # "count" | "time" | "interrupted"


def base_url(url: str) -> str:
    """Validate and normalise the router URL (scheme and host required, no trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unreachable(f"--url {url!r} is not an http(s) URL like http://127.0.0.1:8000")
    return url.rstrip("/")


def short_error(exc: BaseException) -> str:
    """A readable reason instead of urllib3's nested repr."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if match:
        return match.group(1).strip().lower()
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    return type(exc).__name__


def session() -> requests.Session:
    """A session that talks only to the URL it is given: no proxies or netrc from the environment."""
    s = requests.Session()
    s.trust_env = False
    return s


def check_ready(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """GET /ready once; raise Unreachable with the reason when the router cannot take traffic."""
    with session() as s:
        try:
            response = s.get(f"{url}/ready", timeout=timeout_s, allow_redirects=False)
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach the router at {url} ({short_error(exc)}); start it or pass "
                              "--url") from None
    body = _json(response)
    if response.status_code == 503:
        raise Unreachable(f"the router at {url} is up but not ready: {body.get('message') or _champion_hint(body)}")
    if response.status_code != 200:
        raise Unreachable(f"{url} does not look like the ticket-ab router (GET /ready -> HTTP {response.status_code})")
    return body


def _champion_hint(body: dict[str, Any]) -> str:
    return "no champion model is loaded yet" if body.get("champion") is None else "see GET /ready"


def run(
    url: str,
    plans: Iterator[Planned],
    *,
    concurrency: int,
    max_seconds: float,
    feedback_token: str,
    client_token: str = "",
    timeout_s: float = 10.0,
    on_result: Callable[[Result], None] | None = None,
    feedback_tokens: Mapping[str, str] | None = None,
) -> Run:
    """Send every planned request with `concurrency` workers until the plan or the time runs out
    (`/predict` with the `client_token`, anonymous without one; feedback with its planned source's
    token from `feedback_tokens`, else with `feedback_token`)."""
    lock = threading.Lock()
    stop = threading.Event()
    results: list[Result] = []
    started = time.monotonic()
    deadline = started + max_seconds
    headers = {"Authorization": f"Bearer {feedback_token}"} if feedback_token else {}
    by_source = {source: {"Authorization": f"Bearer {token}"} for source, token in (feedback_tokens or {}).items()}
    client_headers = {"Authorization": f"Bearer {client_token}"} if client_token else {}
    timed_out = threading.Event()

    def next_plan() -> Planned | None:
        with lock:
            if stop.is_set():
                return None
            if time.monotonic() >= deadline:
                timed_out.set()
                return None
            return next(plans, None)

    def worker() -> None:
        with session() as s:
            while (item := next_plan()) is not None:
                result = send(s, url, item, by_source.get(item.feedback_source, headers), timeout_s, deadline,
                              client_headers)
                with lock:
                    results.append(result)
                if on_result is not None:
                    on_result(result)

    stopped_by = "count"
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load")
    try:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        for future in futures:
            future.result()
    except KeyboardInterrupt:
        stop.set()
        stopped_by = "interrupted"
    finally:
        pool.shutdown(wait=True)
    if stopped_by == "count" and timed_out.is_set():
        stopped_by = "time"
    return Run(sorted(results, key=lambda r: r.index), time.monotonic() - started, stopped_by)


def send(s: requests.Session, url: str, item: Planned, headers: dict[str, str], timeout_s: float,
         deadline: float, client_headers: dict[str, str] | None = None) -> Result:
    """One /predict (again after each 429's Retry-After while time is left) and, if planned and the
    prediction succeeded, its /feedback."""
    throttled = 0
    while True:
        t0 = time.perf_counter()
        try:
            response = s.post(f"{url}/predict", json=item.payload, headers=client_headers,
                              timeout=min(timeout_s, max(0.5, deadline - time.monotonic())), allow_redirects=False)
        except requests.RequestException as exc:
            return Result(item.index, None, short_error(exc), _ms(t0), feedback_planned=item.feedback is not None,
                          throttled=throttled)
        wait = _retry_after(response)
        if wait is None or time.monotonic() + wait >= deadline:
            break
        throttled += 1
        time.sleep(wait)
    latency = _ms(t0)
    body = _json(response)
    if response.status_code != 200:
        reason = _http_error(response, body)
        return Result(item.index, response.status_code, reason, latency,
                      feedback_planned=item.feedback is not None, throttled=throttled)
    request_id = body.get("request_id")
    result = Result(item.index, 200, "" if request_id else "no request_id in the answer", latency,
                    variant=body.get("variant"), request_id=request_id,
                    feedback_planned=item.feedback is not None, throttled=throttled)
    if item.feedback is None or not request_id:
        return result
    payload = {"request_id": request_id, **item.feedback, "source": FEEDBACK_SOURCE}
    try:
        answer = s.post(f"{url}/feedback", json=payload, headers=headers, allow_redirects=False,
                        timeout=min(timeout_s, max(0.5, deadline - time.monotonic())))
    except requests.RequestException as exc:
        return replace(result, feedback_error=short_error(exc))
    error = "" if answer.status_code == 202 else _http_error(answer, _json(answer))
    return replace(result, feedback_status=answer.status_code, feedback_error=error)


def _retry_after(response: requests.Response) -> float | None:
    """Seconds a 429 asks to wait (Retry-After in seconds, 1 when absent or unreadable); None for any other answer."""
    if response.status_code != 429:
        return None
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _http_error(response: requests.Response, body: dict[str, Any]) -> str:
    """`HTTP 401: unauthorized`: the status and the router's error code (or the HTTP reason)."""
    return f"HTTP {response.status_code}: {body.get('error') or response.reason}"


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
