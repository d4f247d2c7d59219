"""`hookstream run alerts`: monitoring notifications in, one AlertEvent per alert out.

    POST /alerts/{instance}/{source}   source: alertmanager, grafana or zabbix (PUT too)
    GET  /healthz  /readyz  /metrics

The handler is thin: look the instance up, read the body within the limit, check the
route's credentials (hookstream.alerting.auth), read the alerts (hookstream.alerting.sources),
produce every one and answer 2xx only once Kafka has acknowledged them all. Kafka down or
slower than `alerts_produce_timeout_s` gives 503: the sender retries the whole notification
(alerts of it already on Kafka are then there twice, as a repeat notification would be).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable

from aiohttp import web

from hookstream.alerting.auth import AlertInstance, refusal
from hookstream.alerting.sources import parse
from hookstream.config import Settings
from hookstream.control.instances import alert_view
from hookstream.errors import InvalidAlert, TransientError
from hookstream.io import metrics
from hookstream.io.sink import EventSink
from hookstream.io.web import (
    instances_and_sink,
    listen,
    probe_answer,
    read_at_most,
    run_until_signalled,
)
from hookstream.policy import secret_box
from hookstream.records import ALERTS, AlertEvent, AlertSource

log = logging.getLogger(__name__)

Lookup = Callable[[str], AlertInstance | None]
SOURCES = frozenset(AlertSource)


class Alerts:
    """The request handler: `route` serves every path."""

    def __init__(
        self,
        settings: Settings,
        lookup: Lookup,
        sink: EventSink,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ):
        self.settings, self.lookup, self.sink = settings, lookup, sink
        self.clock, self.new_id = clock, new_id
        self.ready: Callable[[], bool] = lambda: True
        self.exported = metrics.registry("alerts")
        self._last_warned = -1e9

    async def route(self, request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.split("/")
        if len(parts) == 4 and parts[1] == "alerts" and parts[3] in SOURCES:
            if request.method not in ("POST", "PUT"):
                return _answer(405, "POST the notification")
            started = time.perf_counter()
            try:
                return await self.receive(request, parts[2], parts[3])
            finally:
                metrics.ALERTS_REQUEST.labels(parts[3]).observe(time.perf_counter() - started)
        probe = probe_answer(request.path, self.ready, self.exported)
        if probe is not None:
            return probe
        return _answer(404, "not found: POST /alerts/{instance}/{alertmanager|grafana|zabbix}")

    async def receive(self, request: web.BaseRequest, name: str, source: str) -> web.Response:
        instance = self.lookup(name)
        if instance is None:
            return _reject(source, "unknown_instance", 404, f"no GLPI instance {name[:64]!r}")
        limit = self.settings.alerts_max_body_bytes
        body = await read_at_most(request, limit)
        if body is None:
            return _reject(source, "too_large", 413, f"body over {limit} bytes")
        now_s = self.clock()
        why = refusal(instance.routes.get(source), source, request.headers, body, now_s)
        if why is not None:
            self._warn(f"instance {name}: {source} notification refused: {why}")
            return _reject(source, "unauthorized", 401, f"unauthorized: {why}")
        try:
            events = parse(source, body, name, int(now_s * 1000), self.new_id)
        except InvalidAlert as e:
            return _reject(source, "invalid", 400, str(e))
        return await self._produce(name, source, events)

    async def _produce(self, name: str, source: str, events: list[AlertEvent]) -> web.Response:
        try:
            acked = [self.sink.submit(event) for event in events]
        except TransientError as e:
            return self._unavailable(name, source, str(e))
        # asyncio.wait neither cancels on timeout (the records stay with the producer) nor
        # raises their exceptions: both read below.
        await asyncio.wait(acked, timeout=self.settings.alerts_produce_timeout_s)
        failed = [a for a in acked if not a.done() or a.exception() is not None]
        if failed:
            reason = "Kafka too slow" if not failed[0].done() else str(failed[0].exception())
            return self._unavailable(name, source, reason)
        for event in events:
            metrics.ALERTS_RECEIVED.labels(name, source, event.status).inc()
        body = {"accepted": len(events), "event_ids": [e.event_id for e in events]}
        return web.Response(text=json.dumps(body), content_type="application/json")

    def _unavailable(self, name: str, source: str, reason: str) -> web.Response:
        self._warn(f"instance {name}: answering 503 to {source}: {reason}")
        return _reject(source, "kafka_unavailable", 503, "Kafka unavailable; retry later")

    def _warn(self, line: str) -> None:
        # An outage or a misconfigured sender fails every request alike: one line per 10 s
        # (the metrics count them all).
        now = time.monotonic()
        if now - self._last_warned >= 10:
            self._last_warned = now
            log.warning("%s", line)


def _reject(source: str, reason: str, status: int, message: str) -> web.Response:
    metrics.ALERTS_REJECTED.labels(source, reason).inc()
    return _answer(status, message)


def _answer(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def serve(settings: Settings, stopping: asyncio.Event | None = None) -> None:
    """Run the endpoint until `stopping` is set (SIGTERM/SIGINT when run from the CLI)."""
    box = secret_box(settings)
    async with instances_and_sink(settings, settings.topic(ALERTS),
                                  settings.alerts_produce_timeout_s,
                                  lambda record: alert_view(record, box)) as (table, sink):
        alerts = Alerts(settings, table.get, sink)
        alerts.ready = lambda: table.ready
        await listen(web.Server(alerts.route), "alerts", settings.alerts_host,
                     settings.alerts_port, stopping or asyncio.Event())


def run_alerts(settings: Settings) -> int:
    return run_until_signalled(lambda stopping: serve(settings, stopping))
