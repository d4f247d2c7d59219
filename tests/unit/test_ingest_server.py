"""The ingest handler with a sink whose acknowledgements the test controls (no Kafka)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
from aiohttp import web

from connectors.ingest import Ingest
from hookstream.config import Settings
from hookstream.policy import IngestInstance, glpi_headers
from tests.conftest import FIXTURES

SECRET = "k" * 40
BODY = (FIXTURES / "webhook_default_payloads" / "Ticket_new.json").read_bytes()
NOW = 1_764_000_000


class HeldSink:
    """Produces nothing; each submit's future settles when the test says so."""

    def __init__(self) -> None:
        self.submitted: list[asyncio.Future[None]] = []

    def submit(self, event: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submitted.append(future)
        return future


async def scenario() -> tuple[list[int], int, list[int]]:
    settings = dataclasses.replace(Settings(), ingest_produce_timeout_s=0.2)
    sink = HeldSink()
    ingest = Ingest(settings, {"a": IngestInstance("a", SECRET)}.get, sink,  # type: ignore[arg-type]
                    clock=lambda: NOW)
    runner = web.ServerRunner(ingest.server())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url, headers = f"http://127.0.0.1:{port}/glpi/a/Ticket", glpi_headers(SECRET, BODY, NOW)
    statuses = []
    async with aiohttp.ClientSession() as session:

        async def post() -> int:
            async with session.post(url, data=BODY, headers=headers) as r:
                return r.status

        statuses.append(await post())  # Kafka slow: 503, the record stays queued
        statuses.append(await post())  # GLPI's retry while it is queued: waits, no new one
        sink.submitted[0].set_result(None)  # Kafka acknowledges the first copy at last
        await asyncio.sleep(0)
        statuses.append(await post())  # the next retry: already accepted
        other = glpi_headers(SECRET, BODY, NOW + 1)  # another change: produced
        async with session.post(url, data=BODY, headers=other) as r:
            statuses.append(r.status)
        produced = len(sink.submitted)
        sink.submitted[-1].set_exception(RuntimeError("broker gone"))
        async with session.post(url, data=BODY, headers=other) as r:  # after a failure:
            after_failure = [r.status, len(sink.submitted)]  # produced again
    await runner.cleanup()
    return statuses, produced, after_failure


def test_a_retry_never_produces_a_second_copy_of_a_row_kafka_still_holds() -> None:
    statuses, produced, after_failure = asyncio.run(scenario())
    assert statuses == [503, 503, 200, 503]  # the last: another change, not yet acked
    assert produced == 2  # the first row once, the other change once
    assert after_failure == [503, 3]
