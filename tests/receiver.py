"""A real HTTP receiver on loopback that records what it gets (svix's TestReceiver idea).

Behaviour per path: a list of statuses served in turn (the last one repeats), an
optional hang, extra response headers, a CRA responder for a given secret, and a bearer
check (a fixed token, or any predicate on the headers such as OAuthServer.authorized).
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many concurrent connects, as a real target takes them

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away (a timeout, a killed sender): expected here
        super().handle_error(request, client_address)


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Behaviour:
    statuses: list[int] = field(default_factory=lambda: [200])
    hang_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    cra_secret: str | None = None
    cra_wrong: bool = False
    bearer: str | None = None  # answer 401 unless "Authorization: Bearer <bearer>"
    # answer 401 unless authorize(lowercased request headers), e.g. OAuthServer.authorized
    authorize: Callable[[dict[str, str]], bool] | None = None
    served: int = 0


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                record = Received(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                status, extra, answer = receiver._respond(record)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_UPDATE = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, **behaviour: Any) -> Behaviour:
        self.behaviours[path] = Behaviour(**behaviour)
        return self.behaviours[path]

    def _respond(self, record: Received) -> tuple[int, dict[str, str], bytes]:
        behaviour = self.behaviours.get(record.path, Behaviour())
        token = record.query.get("crc_token", [None])[0]
        if token is not None and behaviour.cra_secret is not None:
            answer = hmac.new(
                behaviour.cra_secret.encode(), token.encode(), hashlib.sha256
            ).hexdigest()
            with self._lock:
                self.received.append(record)
            return 200, {}, (b"wrong" if behaviour.cra_wrong else answer.encode())
        if behaviour.hang_s:
            time.sleep(behaviour.hang_s)
        with self._lock:
            self.received.append(record)
            status = behaviour.statuses[min(behaviour.served, len(behaviour.statuses) - 1)]
            behaviour.served += 1
        if (
            behaviour.bearer is not None
            and record.headers.get("authorization") != f"Bearer {behaviour.bearer}"
        ):
            return 401, {}, b"unauthorized"
        if behaviour.authorize is not None and not behaviour.authorize(record.headers):
            return 401, {}, b"unauthorized"
        return status, behaviour.headers, b'{"ok": true}'

    def requests(self, path: str | None = None, with_cra: bool = False) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if (path is None or r.path == path) and (with_cra or "crc_token" not in r.query)
            ]

    def wait_for(
        self, count: int, path: str | None = None, timeout_s: float = 30.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.requests(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.requests(path)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class OrderReceiver:
    """A receiver that fails a share of requests (503, chosen by a seeded generator) and
    records, per item, the order of the first successful receipt of each event.

    Bodies are JSON {"id": delivery id, "item": item id, "seq": the event's rank in its
    item}. `order[item]` lists the seqs in the order first delivered; `at` holds
    (time, item, ok) of every request, for what flowed while an item waited."""

    def __init__(self, fail: float, seed: int = 23) -> None:
        import json
        import random

        self.order: dict[int, list[int]] = {}
        self.first: dict[str, float] = {}
        self.at: list[tuple[float, int, bool]] = []
        self.requests = 0
        self.failed = 0
        lock, rand, me = threading.Lock(), random.Random(seed), self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with lock:
                    ok = rand.random() >= fail
                    me.requests += 1
                    me.failed += not ok
                    me.at.append((time.monotonic(), int(data["item"]), ok))
                    if ok and data["id"] not in me.first:
                        me.first[data["id"]] = time.monotonic()
                        me.order.setdefault(int(data["item"]), []).append(int(data["seq"]))
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/in"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def violations(self) -> int:
        """Events first delivered after a later event of their item."""
        count = 0
        for seqs in self.order.values():
            highest = -1
            for seq in seqs:
                count += seq < highest
                highest = max(highest, seq)
        return count

    def __enter__(self) -> OrderReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
