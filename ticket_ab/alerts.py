"""Alerts: one short chat message for each thing the loop did, through Apprise (Telegram, Slack, ... by URL).

The loop changes what customers are served while nobody watches: it finds drift, registers a
challenger, ramps, stops, promotes, rolls back, or waits for an approval. Each of those is one
`Alert` (a title, a few figures and a link), formatted into one message a phone shows whole and
sent to every URL of TICKET_AB_ALERT_URLS (`tgram://BOT_TOKEN/CHAT_ID`, `slack://...`).

Sending never raises: a chat outage must not fail the decision it reports, so the outcome is one
log line (`alert event=... delivered=... targets=... failed=...`). The URLs hold bot tokens, so that
line names a URL by its scheme only (`tgram://***`), and so do Apprise's own log records, which
would otherwise print a URL it cannot parse whole.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import apprise

from ticket_ab.log import get_logger, kv
from ticket_ab.settings import AlertSettings

DRIFT = "drift"
REGISTERED = "challenger_registered"
RAMPED = "ramped"
SRM = "srm"
GUARDRAIL = "guardrail"
PROMOTED = "promoted"
STOPPED = "stopped"
ROLLED_BACK = "rolled_back"
PENDING = "pending"
EVENTS = (DRIFT, REGISTERED, RAMPED, SRM, GUARDRAIL, PROMOTED, STOPPED, ROLLED_BACK, PENDING)
# What asks for a person's eyes soon: sent as warnings, which chat apps show as such.
WARNINGS = frozenset({DRIFT, SRM, GUARDRAIL, STOPPED, ROLLED_BACK, PENDING})
TITLE_LIMIT = 120
BODY_LIMIT = 500  # one phone screen: the figures are clipped, the link is kept whole

log = get_logger("alerts")

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_URL_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31})://[^\s'\"<>]*")
_URL_PARTS = re.compile(r"[/:@?&=,;#\s]+")


@dataclass(frozen=True)
class Alert:
    """One thing the loop did, as people read it: `figures` are short values, shown in their order.

    `link` is where to look; left None, `send` links the MLflow page of `model` (and `version`).
    """

    event: str
    title: str
    figures: dict[str, str]
    link: str | None = None
    model: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown alert event {self.event!r}; known: {', '.join(EVENTS)}")


def format(alert: Alert) -> tuple[str, str]:
    """(title, body) of one short message: the figures on one line, the link on the next."""
    title = _clip(f"ticket-ab: {alert.title}", TITLE_LIMIT)
    link = f"\n{alert.link}" if alert.link else ""
    figures = " · ".join(f"{name} {value}" for name, value in alert.figures.items())
    return title, _clip(figures, BODY_LIMIT - len(link)) + link


def model_link(base: str, model: str | None, version: str | None = None) -> str | None:
    """The MLflow UI page of `model` (its `version`) under `base`; None when `base` is no http(s) URL.

    Credentials in `base` are dropped: the link is posted to a chat.
    """
    parts = urlsplit(base.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    root = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))
    if not model:
        return root
    page = f"{root}/#/models/{quote(model, safe='')}"
    return f"{page}/versions/{quote(str(version), safe='')}" if version else page


def masked(url: str) -> str:
    """`tgram://***`: all a log may say about a URL, which may hold a bot token."""
    match = _SCHEME.match(url.strip())
    return f"{match.group(1).lower()}://***" if match else "***"


def send(alert: Alert, settings: AlertSettings, *, base_link: str = "") -> bool:
    """Tell every target of `settings.urls`; True only when there is one and every target accepted it.

    Never raises: the decision an alert reports stands whether or not a chat took it, and the one log
    line says which. `base_link` (the caller's MLflow server) is linked when TICKET_AB_ALERT_LINK is unset.
    """
    started = time.perf_counter()
    if alert.link is None:
        alert = replace(alert, link=model_link(settings.link or base_link, alert.model, alert.version))
    title, body = format(alert)
    try:
        outcome = _deliver(title, body, alert.event, settings)
    except Exception as exc:  # an Apprise bug must not fail the decision either; its text may quote a URL
        outcome = _Outcome(targets=0, failed=0, invalid=[], error=type(exc).__name__)
    level = logging.INFO if outcome.delivered or outcome.unconfigured else logging.WARNING
    log.log(level, kv(f"alert event={alert.event}", delivered=str(outcome.delivered).lower(), targets=outcome.targets,
                      failed=outcome.failed, invalid=",".join(outcome.invalid) or "none",
                      **({"error": outcome.error} if outcome.error else {}),
                      seconds=time.perf_counter() - started, title=title))
    return outcome.delivered


@dataclass(frozen=True)
class _Outcome:
    targets: int  # URLs Apprise accepted as services
    failed: int  # of those, how many did not take the message in time
    invalid: list[str]  # URLs Apprise could not use, masked
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.targets > 0 and not (self.failed or self.invalid or self.error)

    @property
    def unconfigured(self) -> bool:
        """No URL set: alerts are only logged, as the setting promises."""
        return self.targets == 0 and not (self.invalid or self.error)


def _deliver(title: str, body: str, event: str, settings: AlertSettings) -> _Outcome:
    urls = [url.strip() for url in settings.urls.split(",") if url.strip()]
    _REDACTED.learn(urls)
    services, invalid = _services(urls, settings.timeout_s)
    if not services:
        return _Outcome(targets=0, failed=0, invalid=invalid)
    notifier = apprise.Apprise()
    notifier.add(services)
    kind = apprise.NotifyType.WARNING if event in WARNINGS else apprise.NotifyType.INFO
    with notifier.notify(body=body, title=title, notify_type=kind, body_format=apprise.NotifyFormat.TEXT,
                         timeout=settings.timeout_s) as result:
        return _Outcome(targets=len(services), failed=len(services) - result.success_count, invalid=invalid)


def _services(urls: list[str], timeout_s: float) -> tuple[list[apprise.NotifyBase], list[str]]:
    """Each URL as an Apprise service, and the masked URLs Apprise could not use (the others still get the alert).

    Each service's socket timeouts (what the URL arguments `cto` and `rto` set) are capped at
    `timeout_s`, so no worker waits on a dead chat longer than the whole alert may take.
    """
    services, invalid = [], []
    for url in urls:
        service = apprise.Apprise.instantiate(url)
        if service is None:
            invalid.append(masked(url))
            continue
        service.socket_connect_timeout = min(service.socket_connect_timeout, timeout_s)
        service.socket_read_timeout = min(service.socket_read_timeout, timeout_s)
        services.append(service)
    return services, invalid


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 1, 0)].rstrip() + "…"


class _Redacted(logging.Filter):
    """Apprise logs what it cannot use as it was given (a URL it cannot parse, a token it finds malformed,
    a request error quoting Telegram's `/bot<token>/` path): in its records, any URL keeps only its
    scheme and every part of a configured URL reads `***`."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset()

    def learn(self, urls: list[str]) -> None:
        parts = {piece for url in urls for part in _URL_PARTS.split(url.partition("://")[2] or url)
                 for piece in (part, unquote(part)) if len(piece) >= 4}
        self.secrets = self.secrets | parts  # one assignment: a record filtered meanwhile sees the old or new set

    def filter(self, record: logging.LogRecord) -> bool:
        message = _URL_IN_TEXT.sub(r"\1://***", record.getMessage())
        for secret in sorted(self.secrets, key=len, reverse=True):
            message = message.replace(secret, "***")
        record.msg, record.args = message, ()
        return True


_REDACTED = _Redacted()
apprise.logger.addFilter(_REDACTED)  # the one logger all of Apprise logs to
