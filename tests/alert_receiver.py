"""A real HTTP endpoint for alert tests: what Apprise's `json://` target posts arrives here.

Apprise's JSON plugin (apprise/plugins/custom_json.py) POSTs one JSON object per alert with the
fields `version`, `title`, `message`, `attachments` and `type` (info, warning, ...). The receiver
keeps every body it got, in order, and answers `status` (set it to 500 to play a broken chat).
It runs in a thread of the test process, on 127.0.0.1 and a port the OS picks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/alerts"


class AlertReceiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self._received: list[dict[str, Any]] = []
        self._arrived = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="alert-receiver", daemon=True)  # a short poll: a quick shutdown

    @property
    def url(self) -> str:
        """The Apprise URL that posts here."""
        return f"json://127.0.0.1:{self._server.server_address[1]}{PATH}"

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._arrived:
            return list(self._received)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0) -> list[dict[str, Any]]:
        """What arrived, once `predicate` holds for it; fails naming what did arrive when `timeout` passes first."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: predicate(list(self._received)), timeout=timeout):
                raise AssertionError(f"the receiver's bodies never satisfied the test within {timeout} s: "
                                     f"{self._received!r}")
            return list(self._received)

    def record(self, body: dict[str, Any]) -> None:
        with self._arrived:
            self._received.append(body)
            self._arrived.notify_all()

    def __enter__(self) -> AlertReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(receiver: AlertReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.split("?")[0] != PATH:
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            receiver.record(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            """Quiet: a test reads `received`, not stderr."""

    return Handler
