"""What the HTTP endpoints (`run ingest`, `run alerts`) share: reading a bounded body, the
probes on their port, the instances they follow with the Kafka sink they produce to,
serving until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hookstream.config import Settings
from hookstream.io import codec_for, metrics
from hookstream.io.instances import InstanceTable
from hookstream.io.sink import EventSink
from hookstream.records import InstanceRecord

log = logging.getLogger(__name__)
View = TypeVar("View")


async def read_at_most(request: web.BaseRequest, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (the rest is not read)."""
    if request.content_length is not None:
        if request.content_length > limit:
            return None
        return await request.content.read()  # the parser ends the payload at that length
    body = bytearray()
    async for chunk in request.content.iter_chunked(65_536):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def probe_answer(path: str, ready: Callable[[], bool],
                 exported: CollectorRegistry) -> web.Response | None:
    """The answer to /healthz, /readyz or /metrics on an endpoint's own port; None for
    any other path."""
    if path == "/healthz":
        return web.Response(text="ok\n")
    if path == "/readyz":
        ok = ready()
        return web.Response(status=200 if ok else 503, text="ready\n" if ok else "loading\n")
    if path == "/metrics":
        return web.Response(body=generate_latest(exported),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
    return None


@asynccontextmanager
async def instances_and_sink(
    settings: Settings, topic: str, answer_within_s: float,
    view: Callable[[InstanceRecord], View],
) -> AsyncIterator[tuple[InstanceTable[View], EventSink]]:
    """The instances table (read to its end first) and a sink producing to `topic`; on exit
    the sink is closed on the loop (its callbacks touch loop futures) and what Kafka never
    acknowledged is logged: those requests got no 2xx."""
    codec = codec_for(settings)
    sink = EventSink(settings, topic, codec, answer_within_s)
    table: InstanceTable[View] | None = None
    try:
        table = InstanceTable(settings, codec, view)
        await asyncio.get_running_loop().run_in_executor(None, table.start)
        yield table, sink
    finally:
        unacked = sink.close()
        if table is not None:
            table.close()
        if unacked:
            log.warning("%s record(s) for %s not acknowledged at exit: their requests got "
                        "no 2xx", unacked, topic)


async def listen(server: web.Server, component: str, host: str, port: int,
                 stopping: asyncio.Event, *, reuse_port: bool = False,
                 listening: Callable[[], None] = lambda: None) -> None:
    """Serve until `stopping` is set; requests in flight then get their answer.
    `reuse_port`: SO_REUSEPORT, for worker processes sharing the port; `listening` is
    called once the port accepts connections."""
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024, reuse_port=reuse_port).start()
        metrics.READY.labels(component).set(1)
        log.info("%s listening on %s:%s", component, host, port)
        listening()
        await stopping.wait()
    finally:
        await runner.cleanup()


def run_until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `serve(stopping)` on uvloop where installed; SIGTERM and SIGINT set `stopping`."""

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await serve(stopping)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return 0
