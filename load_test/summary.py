"""What came back from a load test: throughput, latency percentiles, status codes, arm shares, feedback.

Pure over the `Result` list, so the numbers are testable without a server; the text form is for
people, the dict (printed as the last line, as JSON) is for the demo scripts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from load_test.client import Run


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """Linear-interpolated percentiles, None for an empty sample."""
    if len(values) == 0:
        return {f"p{q}": None for q in qs}
    points = np.percentile(np.asarray(values, dtype=float), list(qs))
    return {f"p{q}": round(float(v), 3) for q, v in zip(qs, points, strict=True)}


def _status_key(status: int | None, error: str) -> str:
    return str(status) if status is not None else f"no response ({error})"


def summarize(run: Run, *, planned: int, max_error_rate: float) -> dict[str, Any]:
    """Every number of the console summary, as one JSON-ready dict."""
    results = run.results
    answered = [r for r in results if r.status == 200 and not r.error]
    statuses = Counter(_status_key(r.status, r.error) for r in results)
    arms = Counter(r.variant or "?" for r in answered)
    sent = [r for r in results if r.feedback_status is not None or r.feedback_error]
    accepted = sum(1 for r in sent if r.feedback_status == 202)
    feedback_statuses = Counter(_status_key(r.feedback_status, r.feedback_error) for r in sent)
    predict_errors = len(results) - len(answered)
    calls = len(results) + len(sent)
    errors = predict_errors + len(sent) - accepted
    error_rate = errors / calls if calls else 0.0
    reasons = Counter(r.error for r in results if r.error) + Counter(r.feedback_error for r in sent if r.feedback_error)
    return {
        "planned": planned,
        "requests": len(results),
        "answered": len(answered),
        "elapsed_s": round(run.elapsed_s, 3),
        "requests_per_s": round(len(results) / run.elapsed_s, 2) if run.elapsed_s > 0 else None,
        "stopped_by": run.stopped_by,
        "latency_ms": percentiles([r.latency_ms for r in answered]),
        "status_counts": dict(sorted(statuses.items())),
        "arms": {arm: {"requests": count, "share": round(count / len(answered), 4)}
                 for arm, count in sorted(arms.items())},
        "feedback": {
            "planned": sum(1 for r in results if r.feedback_planned),
            "sent": len(sent),
            "accepted": accepted,
            "share_of_answered": round(accepted / len(answered), 4) if answered else None,
            "status_counts": dict(sorted(feedback_statuses.items())),
        },
        "errors": errors,
        "calls": calls,
        "error_rate": round(error_rate, 6),
        "max_error_rate": max_error_rate,
        "passed": error_rate <= max_error_rate and len(results) > 0,
        "top_errors": dict(reasons.most_common(3)),
        "throttled": sum(r.throttled for r in results),
    }


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable block printed before the JSON line."""
    lat = s["latency_ms"]
    latency = "  ".join(f"{k} {_ms(v)}" for k, v in lat.items())
    arms = "  ".join(f"{arm} {a['requests']} ({a['share']:.1%})" for arm, a in s["arms"].items()) or "none answered"
    fb = s["feedback"]
    fb_share = f"{fb['share_of_answered']:.1%}" if fb["share_of_answered"] is not None else "n/a"
    verdict = "OK" if s["passed"] else "FAILED"
    rate = f"{s['requests_per_s']:.1f} req/s" if s["requests_per_s"] is not None else "n/a"
    lines = [
        f"requests   {s['requests']} of {s['planned']} planned in {s['elapsed_s']:.1f} s ({rate}), "
        f"stopped by {s['stopped_by']}",
        f"latency    {latency}  (client side, answered requests)",
        f"status     {_counts(s['status_counts'])}",
        f"arms       {arms}",
        f"feedback   {fb['accepted']} accepted of {fb['sent']} sent ({fb_share} of answered requests); "
        f"{_counts(fb['status_counts']) or 'none sent'}",
        f"errors     {s['errors']} of {s['calls']} calls ({s['error_rate']:.2%}; allowed {s['max_error_rate']:.2%}) "
        f"-> {verdict}",
    ]
    if s["throttled"]:
        lines.append(f"throttled {s['throttled']} answers 429 (the router's rate limit) waited out and sent again")
    if s["top_errors"]:
        lines.append(f"top errors {_counts(s['top_errors'])}")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
