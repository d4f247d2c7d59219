"""Every Prometheus metric hookstream exports, declared in one place.

Incremented at the edges (processor and delivery loops), never inside the core.
Labels carry ids, never secrets, URLs or bodies.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS = Counter("hookstream_processor_events_total", "Item change events processed",
                 ["instance"])
REQUESTS_PLANNED = Counter("hookstream_processor_deliveries_total",
                           "Delivery requests produced by the processor", ["instance"])
RENDER_ERRORS = Counter("hookstream_render_errors_total", "Templates that failed to render",
                        ["webhook_id"])
UNDECODABLE = Counter("hookstream_undecodable_total", "Records that could not be decoded",
                      ["topic"])
ATTEMPTS = Counter("hookstream_delivery_attempts_total", "Delivery attempts by outcome",
                   ["webhook_id", "outcome"])
GONE = Counter("hookstream_endpoint_gone_total", "Targets that answered 410 Gone", ["webhook_id"])
LATENCY = Histogram("hookstream_delivery_seconds", "HTTP attempt duration",
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
END_TO_END = Histogram("hookstream_delivery_lag_seconds",
                       "From delivery request created to delivered",
                       buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 600, 3600, 21600, 86400))
IN_FLIGHT = Gauge("hookstream_delivery_in_flight", "HTTP requests in flight")
OPEN_CIRCUITS = Gauge("hookstream_open_circuits", "Target origins whose circuit is open")
READY = Gauge("hookstream_ready", "1 once the component's tables are caught up", ["component"])


def serve(port: int) -> None:
    """Expose /metrics on `port` (0 = off)."""
    if port:
        start_http_server(port)
