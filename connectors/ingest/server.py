"""`hookstream run ingest`: GLPI 11 native webhooks in, ItemChangeEvents out.

    POST /glpi/{instance}/{itemtype}   (GLPI's other methods too: GET, PUT, PATCH, UPDATE)
    GET  /glpi/{instance}/{itemtype}?crc_token=T   GLPI's CRA challenge
    GET  /healthz  /readyz  /metrics

One process, or several sharing the port (`--workers N`: connectors/ingest/workers.py),
each answering with its pid in `X-Hookstream-Worker`.

The handler is thin: look the instance up, read the body within the limit, ask the pure
core (`hookstream.policy.assess`) for a verdict, and for an accepted request produce the
event and answer 2xx only once Kafka has acknowledged it. Kafka down or slow past
`ingest_produce_timeout_s` gives 503, so GLPI keeps its queued row and retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from aiohttp import web

from connectors.ingest.http import IngestServer, Parser
from hookstream.config import Settings
from hookstream.control.instances import ingest_view
from hookstream.errors import TransientError
from hookstream.io import metrics
from hookstream.io.sink import EventSink
from hookstream.io.web import (
    instances_and_sink,
    listen,
    probe_answer,
    read_at_most,
)
from hookstream.policy import (
    Accept,
    AcceptedRequests,
    Challenge,
    IncomingRequest,
    IngestInstance,
    SecretBox,
    assess,
    secret_box,
)
from hookstream.records import ITEM_CHANGES, InstanceRecord

log = logging.getLogger(__name__)

Lookup = Callable[[str], IngestInstance | None]


class Ingest:
    """The request handler and its state: accepted-request memory, requests in flight."""

    def __init__(
        self,
        settings: Settings,
        lookup: Lookup,
        sink: EventSink | None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.lookup = lookup
        self.sink = sink
        self.clock = clock
        self.accepted = AcceptedRequests(settings.ingest_dedup_entries, settings.ingest_dedup_ttl_s)
        self._in_flight: dict[bytes, asyncio.Future[None]] = {}
        self.ready: Callable[[], bool] = lambda: True
        self._last_warned = -1e9
        # by (instance, outcome) and instance: known instances, "unknown" for the rest
        self._requests = metrics.Children(metrics.INGEST_REQUESTS.labels)
        self._delays = metrics.Children(metrics.GLPI_DELAY.labels)
        self.exported = metrics.registry("ingest")
        self.worker = ""  # a worker of several: its pid, named in every answer

    def server(self, parser: Parser = "auto") -> web.Server:
        """The low-level server (no router: four paths), reading GLPI's UPDATE too."""
        return IngestServer(self.route, parser, access_log=None)

    async def route(self, request: web.BaseRequest) -> web.StreamResponse:
        answer = await self._route(request)
        if self.worker:
            answer.headers["X-Hookstream-Worker"] = self.worker
        return answer

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.split("/")
        if len(parts) == 4 and parts[1] == "glpi" and parts[2] and parts[3]:
            return await self.handle(request, parts[2], parts[3])
        probe = probe_answer(request.path, self.ready, self.exported)
        if probe is not None:
            return probe
        return _answer(404, "not found: POST /glpi/{instance}/{itemtype}")

    async def handle(self, request: web.BaseRequest, name: str, itemtype: str) -> web.Response:
        instance = self.lookup(name)
        if instance is None:
            self._requests("unknown", "unknown_instance").inc()
            return _answer(404, f"no GLPI instance {name[:64]!r}")
        limit = self.settings.ingest_max_body_bytes
        if (request.content_length or 0) > limit:
            return self._reject(name, 413, f"body over {limit} bytes", "too_large")
        body = await read_at_most(request, limit)
        if body is None:
            return self._reject(name, 413, f"body over {limit} bytes", "too_large")
        now_s = self.clock()
        verdict = assess(
            IncomingRequest(
                itemtype=itemtype,
                method=request.method,
                body=body,
                signature=request.headers.get("X-GLPI-signature"),
                timestamp=request.headers.get("X-GLPI-timestamp"),
                crc_token=request.query.get("crc_token"),
                source=request.remote or "",
            ),
            instance,
            now_s,
            limit,
        )
        if isinstance(verdict, Challenge):
            self._requests(name, "challenge").inc()
            return web.Response(text=verdict.answer)
        if not isinstance(verdict, Accept):
            return self._reject(name, verdict.status, verdict.reason, verdict.outcome)
        self._delays(name).observe(max(0.0, now_s - verdict.timestamp_s))
        if verdict.exact is False:
            metrics.INGEST_INEXACT.labels(name).inc()
        return await self._produce(name, verdict, now_s)

    async def _produce(self, name: str, verdict: Accept, now_s: float) -> web.Response:
        key = verdict.dedup_key
        if self.accepted.seen(key, now_s):
            self._requests(name, "duplicate").inc()
            return _accepted(verdict, duplicate=True)
        # A row already being produced (GLPI retried after our 503 while Kafka still held
        # the first copy) waits for that copy instead of producing a second one.
        acked = self._in_flight.get(key)
        duplicate = acked is not None
        if acked is None:
            assert self.sink is not None
            try:
                acked = self.sink.submit(verdict.event)
            except TransientError as e:
                return self._unavailable(name, str(e))
            self._in_flight[key] = acked
            acked.add_done_callback(lambda done: self._settled(key, done))
        started = time.perf_counter()
        # asyncio.wait neither cancels the future on timeout (the record stays with the
        # producer; a retry waits for it) nor raises its exception: both read below.
        await asyncio.wait((acked,), timeout=self._timeout_s)
        if not acked.done() or acked.exception() is not None:
            reason = "Kafka too slow" if not acked.done() else str(acked.exception())
            return self._unavailable(name, reason)
        if not duplicate:
            metrics.INGEST_PRODUCE.observe(time.perf_counter() - started)
        self._requests(name, "duplicate" if duplicate else "accepted").inc()
        return _accepted(verdict, duplicate=duplicate)

    def _unavailable(self, name: str, reason: str) -> web.Response:
        # During an outage every request fails alike: one line per 10 s, the metric counts.
        now = time.monotonic()
        if now - self._last_warned >= 10:
            self._last_warned = now
            log.warning("instance %s: answering 503: %s", name, reason)
        return self._reject(name, 503, "Kafka unavailable; retry later", "unavailable")

    def _settled(self, key: bytes, task: asyncio.Future[None]) -> None:
        """Kafka's verdict on a produced row, whether or not its request still waits."""
        self._in_flight.pop(key, None)
        if not task.cancelled() and task.exception() is None:
            self.accepted.add(key, self.clock())

    @property
    def _timeout_s(self) -> float:
        return self.settings.ingest_produce_timeout_s

    def _reject(self, name: str, status: int, reason: str, outcome: str) -> web.Response:
        self._requests(name, outcome).inc()
        return _answer(status, reason)


def _answer(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _accepted(verdict: Accept, duplicate: bool) -> web.Response:
    # the id is hex: no escaping needed, and an f-string costs a third of json.dumps
    body = f'{{"event_id": "{verdict.event.event_id}", "duplicate": {str(duplicate).lower()}}}'
    return web.Response(text=body, content_type="application/json")


async def serve(
    settings: Settings, stopping: asyncio.Event | None = None, parser: Parser = "auto", *,
    reuse_port: bool = False, listening: Callable[[], None] = lambda: None,
) -> None:
    """Run the endpoint until `stopping` is set (SIGTERM/SIGINT when run from the CLI).

    `reuse_port`: one worker of several sharing the port (SO_REUSEPORT), naming its pid in
    its answers; `listening` is called once the port accepts connections.
    `parser="python"` (connectors.ingest.http) only serves bench/ingest.py, to measure
    what aiohttp's Python parser costs."""
    async with instances_and_sink(settings, settings.topic(ITEM_CHANGES),
                                  settings.ingest_produce_timeout_s,
                                  _ingest_view(settings, secret_box(settings))) as (table, sink):
        ingest = Ingest(settings, table.get, sink)
        ingest.ready = lambda: table.ready
        if reuse_port:
            ingest.worker = str(os.getpid())
        await listen(ingest.server(parser), "ingest", settings.ingest_host,
                     settings.ingest_port, stopping or asyncio.Event(),
                     reuse_port=reuse_port, listening=listening)


def _ingest_view(settings: Settings, box: SecretBox) -> Callable[[InstanceRecord], IngestInstance]:
    def view(record: InstanceRecord) -> IngestInstance:
        if record.timestamp_tolerance_s + 300 > settings.ingest_dedup_ttl_s:
            log.warning(
                "instance %s: timestamp tolerance %ss exceeds the dedup memory of %.0fs; "
                "raise ingest_dedup_ttl_s", record.name, record.timestamp_tolerance_s,
                settings.ingest_dedup_ttl_s,
            )
        return ingest_view(record, box)

    return view
