"""`python load_test/testing.py`: simulate support traffic against the A/B router.

    python load_test/testing.py --url http://127.0.0.1:8000 --n 1000 --concurrency 8 \\
        --scenario new_product --feedback-rate 0.3 --label-noise 0.05 --seed 1 --max-seconds 300

Tickets come from the retrain generator (or --from FILE), so their true topic is known; a
--feedback-rate share of answered requests gets the true topic back through /feedback, flipped to
another topic with probability --label-noise, as real agents err. With --feedback-sources the
feedback goes out in turn from several integrations, each with its own token, taken from
TICKET_AB_FEEDBACK_TOKENS (`source:token,...`, the router's setting) in the environment. A --priority-rate
share of the feedback also carries the ticket's true priority, and a --priority-only share of that sends the
priority alone (both 0 by default: topics only). `/predict`
carries the client token (--token, default TICKET_AB_CLIENT_TOKEN; none: anonymous), and a 429 is
waited out (Retry-After) and sent again. Prints a progress bar on stderr, then the summary and, as
the last line, the summary as JSON (also written to --json-out).

Exit codes:
  0  done, error rate within --max-error-rate
  1  done, but the error rate passed --max-error-rate (or nothing was sent)
  2  the router is unreachable or not ready, a bad argument, or an unreadable --from file
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from load_test import client, summary, traffic
from load_test.progress import Progress
from load_test.simulate.generator import SCENARIOS
from ticket_ab.schema import TicketDataError
from ticket_ab.settings import SettingsError, get_settings

EXIT_OK = 0
EXIT_ERROR_RATE = 1
EXIT_USER_ERROR = 2


class UsageError(ValueError):
    """A bad argument; printed as one `error:` line."""


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not within [0, 1]")
    return value


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value

    return parse


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no integration")
    return names


def source_tokens(names: list[str], setting: str) -> dict[str, str]:
    """The feedback token of each named integration from TICKET_AB_FEEDBACK_TOKENS (`source:token,...`);
    a missing one is a UsageError naming the integration (never a token)."""
    tokens = {}
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        source, sep, token = entry.partition(":")
        if sep and source.strip() and token.strip():
            tokens[source.strip()] = token.strip()
    missing = [name for name in names if name not in tokens]
    if missing:
        raise UsageError(f"--feedback-sources names {', '.join(map(repr, missing))}, which TICKET_AB_FEEDBACK_TOKENS "
                         "(source:token,...) in the environment does not give a token")
    return {name: tokens[name] for name in names}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: bad values fail here with argparse's usage message."""
    parser = argparse.ArgumentParser(prog="testing.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="router base URL (default: http://TICKET_AB_HOST:TICKET_AB_PORT)")
    parser.add_argument("--n", type=_positive(int), default=1000, help="requests to send (default %(default)s)")
    parser.add_argument("--concurrency", type=_positive(int), default=8, help="worker threads (default %(default)s)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="baseline", help="generator scenario")
    parser.add_argument("--seed", type=int, default=0, help="seed for tickets, customers and feedback draws")
    parser.add_argument("--from", dest="from_file", type=Path, help="replay tickets from a CSV/Parquet file instead")
    parser.add_argument("--customers", type=_positive(int), default=500,
                        help="customer pool size (Zipf-skewed; default %(default)s)")
    parser.add_argument("--feedback-rate", type=_share, default=0.3,
                        help="share of answered requests that get feedback (default %(default)s)")
    parser.add_argument("--label-noise", type=_share, default=0.0,
                        help="probability that a feedback label is another topic (default %(default)s)")
    parser.add_argument("--priority-rate", type=_share, default=0.0,
                        help="share of that feedback that also carries the ticket's true priority (default "
                             "%(default)s: topics only)")
    parser.add_argument("--priority-only", type=_share, default=0.0,
                        help="share of the feedback with a priority that sends it alone, without the topic (default "
                             "%(default)s)")
    parser.add_argument("--feedback-token", help="bearer token for /feedback (default: TICKET_AB_FEEDBACK_TOKEN)")
    parser.add_argument("--feedback-sources", type=_names, default=[],
                        help="send feedback in turn from these integrations (comma-separated), each with its token "
                             "from TICKET_AB_FEEDBACK_TOKENS in the environment (default: one token)")
    parser.add_argument("--token", help="client token for /predict (default: TICKET_AB_CLIENT_TOKEN; none: anonymous); "
                        "better set in the environment than on a command line")
    parser.add_argument("--max-seconds", type=_positive(float), default=300.0,
                        help="stop sending after this many seconds (default %(default)s)")
    parser.add_argument("--timeout", type=_positive(float), default=10.0, help="per-request timeout in seconds")
    parser.add_argument("--max-error-rate", type=_share, default=0.01,
                        help="exit 1 when failed calls / all calls exceeds this (default %(default)s)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON summary to this file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def build_plan(args: argparse.Namespace) -> tuple[Iterator[traffic.Planned], int]:
    """The planned requests (an iterator) and how many there will be."""
    if args.from_file:
        tickets, labels = traffic.replayed(args.from_file)
        total = min(args.n, len(tickets))
        if total < args.n:
            print(f"note: {args.from_file} has {len(tickets)} tickets; sending {total}", file=sys.stderr)
        pool = traffic.CustomerPool(args.customers, args.seed)
        return traffic.plan(tickets, n=total, seed=args.seed, feedback_rate=args.feedback_rate,
                            label_noise=args.label_noise, labels=labels, customers=pool,
                            sources=args.feedback_sources, priority_rate=args.priority_rate,
                            priority_only=args.priority_only), total
    tickets = traffic.generated(args.scenario, args.seed, args.customers)
    return traffic.plan(tickets, n=args.n, seed=args.seed, feedback_rate=args.feedback_rate,
                        label_noise=args.label_noise, sources=args.feedback_sources, priority_rate=args.priority_rate,
                        priority_only=args.priority_only), args.n


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = get_settings()
        url = client.base_url(args.url or f"http://{settings.router.host}:{settings.router.port}")
        token = args.feedback_token if args.feedback_token is not None else settings.router.feedback_token
        client_token = args.token if args.token is not None else settings.router.client_token
        tokens = source_tokens(args.feedback_sources, settings.router.feedback_tokens)
        if args.feedback_rate > 0 and not token and not tokens:
            raise UsageError(f"--feedback-rate {args.feedback_rate} needs the router's feedback token: pass "
                             "--feedback-token or set TICKET_AB_FEEDBACK_TOKEN (or use --feedback-rate 0)")
        plans, total = build_plan(args)
        client.check_ready(url, timeout_s=min(args.timeout, 5.0))
    except (UsageError, SettingsError, TicketDataError, client.Unreachable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    source = str(args.from_file) if args.from_file else f"generator scenario {args.scenario!r} seed {args.seed}"
    print(f"sending {total} tickets ({source}) to {url} with {args.concurrency} workers, "
          f"feedback on {args.feedback_rate:.0%} (label noise {args.label_noise:.0%}), at most {args.max_seconds:g} s",
          file=sys.stderr)
    progress = Progress(total, enabled=not args.no_progress)
    run = client.run(url, plans, concurrency=args.concurrency, max_seconds=args.max_seconds, feedback_token=token,
                     client_token=client_token, timeout_s=args.timeout, feedback_tokens=tokens,
                     on_result=lambda r: progress.tick(failed=bool(r.error or r.feedback_error)))
    progress.close()
    result = summary.summarize(run, planned=total, max_error_rate=args.max_error_rate)
    result.update(url=url, source=source, concurrency=args.concurrency, feedback_rate=args.feedback_rate,
                  label_noise=args.label_noise, priority_rate=args.priority_rate, priority_only=args.priority_only)
    print(summary.format_summary(result))
    line = json.dumps(result, sort_keys=True)
    print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n", encoding="utf-8")
    return EXIT_OK if result["passed"] else EXIT_ERROR_RATE


if __name__ == "__main__":
    sys.exit(main())
