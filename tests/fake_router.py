"""Test helper: a stand-in router on 127.0.0.1 that records what the load test sends (a thread, no process)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "fake-feedback-token"


class FakeRouter:
    """Records what it receives; `fail_every`, `throttle_first`, `delay_s` and `ready_status` shape its answers."""

    def __init__(self) -> None:
        self.predicts: list[dict] = []
        self.predict_auth: list[str] = []  # the Authorization header of every /predict
        self.throttle_first = 0  # answer the first N /predict with 429 and `Retry-After: 0`
        self.feedback: list[tuple[str, dict]] = []
        self.fail_every = 0
        self.delay_s = 0.0
        self.ready_status = 200
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/ready":
                    self._send(fake.ready_status, {"ready": fake.ready_status == 200, "champion": None})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/predict":
                    time.sleep(fake.delay_s)
                    with fake.lock:
                        fake.predicts.append(body)
                        fake.predict_auth.append(self.headers.get("Authorization", ""))
                        count = len(fake.predicts)
                    if count <= fake.throttle_first:
                        self._send(429, {"error": "rate_limited", "message": "over the limit"}, {"Retry-After": "0"})
                        return
                    if fake.fail_every and count % fake.fail_every == 0:
                        self._send(503, {"error": "no_champion", "message": "no champion"})
                        return
                    variant = "B" if sum(map(ord, body.get("customer_id", ""))) % 2 else "A"
                    self._send(200, {"request_id": uuid.uuid4().hex, "variant": variant, "topic": "access"})
                elif self.path == "/feedback":
                    with fake.lock:
                        fake.feedback.append((self.headers.get("Authorization", ""), body))
                    if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                        self._send(401, {"error": "unauthorized"})
                    else:
                        self._send(202, {"status": "accepted"})
                else:
                    self._send(404, {"error": "not_found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeRouter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
