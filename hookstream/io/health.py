"""Every component's operations endpoint: /metrics (Prometheus), /healthz and /readyz.

/readyz follows the component's `ready` callback: 503 until its tables are caught up, and
again while it cannot reach Kafka (the processor clears it on an outage and sets it once
batches commit again), so Kubernetes routes nothing and scales nothing on a component
that is loading or cut off. /healthz stays 200 meanwhile: an outage is no reason to
restart a process that recovers by itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hookstream.io.kafka_link import LINK


def serve(
    port: int, ready: Callable[[], bool], host: str = "0.0.0.0", *, registry: CollectorRegistry
) -> ThreadingHTTPServer | None:
    """Start the endpoint on `port` in a daemon thread (0 = off); returns the server.
    /metrics serves `registry`: the component's own, io/metrics.registry(component)."""
    if not port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._answer(200, b"ok\n")
            elif self.path == "/readyz":
                is_ready = ready() and LINK.ok()  # not while Kafka is unreachable
                self._answer(200 if is_ready else 503, b"ready\n" if is_ready else b"loading\n")
            else:
                self._answer(404, b"not found\n")

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would flood the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server
