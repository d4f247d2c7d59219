"""`hookstream run ingest`: GLPI 11 native webhooks in, ItemChangeEvents out.

    POST /glpi/{instance}/{itemtype}   (GLPI's other methods too: GET, PUT, PATCH, UPDATE)
    GET  /glpi/{instance}/{itemtype}?crc_token=T   GLPI's CRA challenge
    GET  /healthz  /readyz  /metrics

The handler is thin: look the instance up, read the body within the limit, ask the pure
core (`hookstream.policy.assess`) for a verdict, and for an accepted request produce the
event and answer 2xx only once Kafka has acknowledged it. Kafka down or slow past
`ingest_produce_timeout_s` gives 503, so GLPI keeps its queued row and retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.ingest.http import AnyMethodServer
from connectors.ingest.instances import InstanceTable
from connectors.ingest.sink import EventSink
from hookstream.config import Settings
from hookstream.errors import TransientError
from hookstream.io import codec_for, metrics
from hookstream.policy import (
    Accept,
    AcceptedRequests,
    Challenge,
    IncomingRequest,
    IngestInstance,
    assess,
    secret_box,
)
from hookstream.records import ITEM_CHANGES, ItemChangeEvent

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

    def acknowledged(self, event: ItemChangeEvent) -> None:
        """Kafka's callback thread calls this; the memory is touched on the loop only."""
        self._loop.call_soon_threadsafe(
            self.accepted.add, bytes.fromhex(event.event_id), self.clock()
        )

    def server(self, any_method: bool = True) -> web.Server:
        """The low-level server (no router: four paths); `any_method` lets UPDATE in."""
        self._loop = asyncio.get_running_loop()
        kind = AnyMethodServer if any_method else web.Server
        return kind(self.route, access_log=None)

    async def route(self, request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.split("/")
        if len(parts) == 4 and parts[1] == "glpi" and parts[2] and parts[3]:
            return await self.handle(request, parts[2], parts[3])
        if request.path == "/healthz":
            return web.Response(text="ok\n")
        if request.path == "/readyz":
            ok = self.ready()
            return web.Response(status=200 if ok else 503, text="ready\n" if ok else "loading\n")
        if request.path == "/metrics":
            return web.Response(body=generate_latest(),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})
        return _answer(404, "not found: POST /glpi/{instance}/{itemtype}")

    async def handle(self, request: web.BaseRequest, name: str, itemtype: str) -> web.Response:
        instance = self.lookup(name)
        if instance is None:
            metrics.INGEST_REQUESTS.labels("unknown", "unknown_instance").inc()
            return _answer(404, f"no GLPI instance {name[:64]!r}")
        limit = self.settings.ingest_max_body_bytes
        if (request.content_length or 0) > limit:
            return self._reject(name, 413, f"body over {limit} bytes", "too_large")
        body = await _read_at_most(request, limit)
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
            metrics.INGEST_REQUESTS.labels(name, "challenge").inc()
            return web.Response(text=verdict.answer)
        if not isinstance(verdict, Accept):
            return self._reject(name, verdict.status, verdict.reason, verdict.outcome)
        metrics.GLPI_DELAY.labels(name).observe(max(0.0, now_s - verdict.timestamp_s))
        if not verdict.exact:
            metrics.INGEST_INEXACT.labels(name).inc()
        return await self._produce(name, verdict, now_s)

    async def _produce(self, name: str, verdict: Accept, now_s: float) -> web.Response:
        key = verdict.dedup_key
        if self.accepted.seen(key, now_s):
            metrics.INGEST_REQUESTS.labels(name, "duplicate").inc()
            return _accepted(verdict, duplicate=True)
        pending = self._in_flight.get(key)
        if pending is not None:  # the same row twice at once: share the first's outcome
            try:
                await asyncio.wait_for(asyncio.shield(pending), self._timeout_s)
            except (TransientError, TimeoutError):
                return self._reject(name, 503, "Kafka has not acknowledged yet", "unavailable")
            metrics.INGEST_REQUESTS.labels(name, "duplicate").inc()
            return _accepted(verdict, duplicate=True)
        assert self.sink is not None
        started = time.perf_counter()
        task = asyncio.ensure_future(self.sink.send(verdict.event))
        self._in_flight[key] = task
        try:
            await asyncio.wait_for(asyncio.shield(task), self._timeout_s)
        except (TransientError, TimeoutError) as e:
            log.warning("instance %s: answering 503: %s", name, e or "Kafka too slow")
            return self._reject(name, 503, "Kafka unavailable; retry later", "unavailable")
        finally:
            self._in_flight.pop(key, None)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failure is answered 503, not logged twice
        metrics.INGEST_PRODUCE.observe(time.perf_counter() - started)
        self.accepted.add(key, self.clock())
        metrics.INGEST_REQUESTS.labels(name, "accepted").inc()
        return _accepted(verdict, duplicate=False)

    @property
    def _timeout_s(self) -> float:
        return self.settings.ingest_produce_timeout_s

    def _reject(self, name: str, status: int, reason: str, outcome: str) -> web.Response:
        metrics.INGEST_REQUESTS.labels(name, outcome).inc()
        return _answer(status, reason)


async def _read_at_most(request: web.BaseRequest, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (the rest is not read)."""
    body = bytearray()
    async for chunk in request.content.iter_chunked(65_536):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _answer(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _accepted(verdict: Accept, duplicate: bool) -> web.Response:
    body = {"event_id": verdict.event.event_id, "duplicate": duplicate}
    return web.Response(text=json.dumps(body), content_type="application/json")


async def serve(settings: Settings, stopping: asyncio.Event | None = None) -> None:
    """Run the endpoint until `stopping` is set (SIGTERM/SIGINT when run from the CLI)."""
    stopping = stopping or asyncio.Event()
    codec = codec_for(settings)
    table = InstanceTable(settings, codec, secret_box(settings))
    await asyncio.get_running_loop().run_in_executor(None, table.start)
    ingest = Ingest(settings, table.get, None)
    runner = web.ServerRunner(ingest.server(), access_log=None)
    sink = EventSink(settings, settings.topic(ITEM_CHANGES), codec, ingest.acknowledged)
    ingest.sink = sink
    ingest.ready = lambda: table.ready
    await runner.setup()
    site = web.TCPSite(runner, settings.ingest_host, settings.ingest_port, backlog=1024)
    await site.start()
    metrics.READY.labels("ingest").set(1)
    log.info("ingest listening on %s:%s", settings.ingest_host, settings.ingest_port)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()  # stops accepting; requests in flight get their answer
        unacked = await asyncio.get_running_loop().run_in_executor(None, sink.close)
        table.close()
        if unacked:
            log.warning("%s event(s) not acknowledged at exit: their requests got no 2xx",
                        unacked)


def run_ingest(settings: Settings) -> int:
    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await serve(settings, stopping)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return 0
