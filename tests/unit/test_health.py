"""The operations endpoint: metrics, liveness, and readiness that follows the component."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from hookstream.io import health, metrics


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_readiness_follows_the_component_and_metrics_are_served() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = [False]
    server = health.serve(port, lambda: ready[0], host="127.0.0.1",
                          registry=metrics.registry("delivery"))
    assert server is not None
    try:
        assert get(port, "/healthz") == (200, b"ok\n")
        assert get(port, "/readyz") == (503, b"loading\n")
        ready[0] = True
        assert get(port, "/readyz") == (200, b"ready\n")
        metrics.GONE.labels("hook-1").inc()
        status, body = get(port, "/metrics")
        assert status == 200 and b'hookstream_endpoint_gone_total{webhook_id="hook-1"}' in body
        assert b"process_cpu_seconds_total" in body  # the process collectors too
        assert b"hookstream_poller_poll_seconds" not in body  # not another component's
        assert get(port, "/nope")[0] == 404
    finally:
        server.shutdown()
    assert health.serve(0, lambda: True, registry=metrics.registry("delivery")) is None
