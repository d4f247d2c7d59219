"""`hookstream run ingest --workers 2` on the real broker: both workers serve, every accepted
event is on Kafka as one process puts it there, /metrics sums both, a killed worker is
restarted and loses no answered request, SIGTERM drains them all."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hookstream.config import Settings
from hookstream.io import create_topics
from tests.fake_glpi import FakeGlpiSender, QueuedWebhook
from tests.integration.harness import cli_env
from tests.integration.test_ingest import (
    BODIES,
    SECRET,
    RunningIngest,
    apply_instances,
    events,
    free_port,
)

WORKER = "X-Hookstream-Worker"
TEMPLATE = BODIES[-1].read_bytes()  # a Ticket
MARKER = b'"id": 4211'


class Workers:
    """`hookstream run ingest --workers 2` as a subprocess."""

    def __init__(self, settings: Settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", "run", "ingest", "--workers", "2"],
            env=cli_env(settings, ingest_host="127.0.0.1", ingest_port=str(self.port)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def worker_pids(self) -> set[int]:
        """The parent's live children but multiprocessing's resource tracker."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return {int(p) for p in children.split()
                if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()}

    async def answering(self, session: aiohttp.ClientSession, path: str,
                        pids: int = 2) -> dict[str, str]:
        """GETs `path` on new connections until `pids` distinct workers answered 200; the
        last body each gave, by pid."""
        bodies: dict[str, str] = {}
        deadline = time.monotonic() + 90
        while len(bodies) < pids:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"workers answering: {sorted(bodies)}"
            try:
                async with session.get(self.url + path) as r:
                    if r.status == 200:
                        bodies[r.headers[WORKER]] = await r.text()
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        return bodies

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    create_topics(settings)
    apply_instances(settings, tmp_path)
    running = Workers(settings)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(10)


def tickets(glpi: FakeGlpiSender, url: str, first: int, count: int) -> list[QueuedWebhook]:
    now = int(time.time())
    return [glpi.queue(f"{url}/glpi/glpi-a/Ticket",
                       TEMPLATE.replace(MARKER, f'"id": {first + n}'.encode(), 1), now - n % 7)
            for n in range(count)]


async def send(session: aiohttp.ClientSession, row: QueuedWebhook) -> tuple[int, str]:
    """One GLPI attempt (FakeGlpiSender.attempt) and the worker that answered; (0, "") when
    the connection died without an answer."""
    row.sent_try += 1
    try:
        async with session.request(row.method, row.url, data=row.body, headers=row.headers,
                                   skip_auto_headers=["Content-Type"]) as response:
            await response.read()
            row.statuses.append(response.status)
            return response.status, response.headers.get(WORKER, "")
    except aiohttp.ClientError:
        row.statuses.append(0)
        return 0, ""


def counted(metrics_text: str, outcome: str) -> float:
    found = re.search(r'^hookstream_ingest_requests_total\{glpi_instance="glpi-a",'
                      rf'outcome="{outcome}"\}} (\S+)$', metrics_text, re.M)
    return float(found.group(1)) if found else 0.0


def item_id(row: QueuedWebhook) -> int:
    return int(json.loads(row.body)["item"]["id"])


def test_two_workers_serve_and_every_event_is_on_kafka_as_one_process_puts_it(
    settings: Settings, workers: Workers, tmp_path: Path
) -> None:
    glpi = FakeGlpiSender(SECRET)
    rows = tickets(glpi, workers.url, 500_000, 200)

    async def run() -> tuple[list[tuple[int, str]], dict[str, str], list[tuple[int, str]]]:
        async with FakeGlpiSender.session() as session:  # a connection per request, as GLPI
            await workers.answering(session, "/readyz")
            answers = await asyncio.gather(*(send(session, r) for r in rows))
            scraped = await workers.answering(session, "/metrics")
            again = [await send(session, r) for r in rows[:40]]  # GLPI resending, lost answers
            return list(answers), scraped, again

    answers, scraped, again = asyncio.run(run())
    assert [status for status, _ in answers] == [200] * len(rows)
    served = Counter(pid for _, pid in answers)
    assert len(served) == 2 and set(map(int, served)) == workers.worker_pids()
    # each worker's /metrics is the pod's: both count every request, whichever served it
    for text in scraped.values():
        assert counted(text, "accepted") == len(rows)
        assert 'hookstream_ready{component="ingest"} 1.0' in text
        assert "hookstream_processor" not in text and "hookstream_delivery" not in text
    assert [status for status, _ in again] == [200] * len(again)
    pids = workers.worker_pids()
    assert workers.stop() == 0  # SIGTERM: both drain, the parent ends 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)

    # The same rows through one process, as before, on topics of their own.
    alone = dataclasses.replace(settings, topic_prefix=settings.topic_prefix + "alone.")
    create_topics(alone)
    apply_instances(alone, tmp_path)
    with RunningIngest(alone) as one:
        replayed = [dataclasses.replace(r, url=r.url.replace(workers.url, one.url)) for r in rows]

        async def through_one() -> list[int]:
            async with FakeGlpiSender.session() as session:
                return [(await send(session, r))[0] for r in replayed]

        assert asyncio.run(through_one()) == [200] * len(rows)
    expected = {e.event_id: e for e in events(alone)}
    got = events(settings)
    assert len(expected) == len(rows)
    # every event exactly as one process produces it; a resend a worker had not seen is a
    # second copy with the same event id (the processor skips it), never a different event
    assert {e.event_id for e in got} == set(expected)
    assert all(e == expected[e.event_id] for e in got)
    assert len(got) - len(rows) <= len(again)
    assert sorted({e.items_id for e in got}) == sorted(item_id(r) for r in rows)


def test_a_killed_worker_is_restarted_and_no_answered_request_is_lost(
    settings: Settings, workers: Workers
) -> None:
    glpi = FakeGlpiSender(SECRET)
    rows = tickets(glpi, workers.url, 600_000, 400)

    async def run() -> tuple[str, set[str], str]:
        async with FakeGlpiSender.session() as session:
            first = set(await workers.answering(session, "/readyz"))
            victim = sorted(first)[0]

            async def killer() -> None:
                while sum(1 for r in rows if r.statuses and r.statuses[-1] == 200) < 100:
                    await asyncio.sleep(0.005)
                os.kill(int(victim), signal.SIGKILL)

            kill = asyncio.create_task(killer())
            await asyncio.gather(*(send(session, r) for r in rows))
            await kill
            # GLPI's cron resends every row not answered 2xx until it is
            deadline = time.monotonic() + 90
            while any(r.statuses[-1] != 200 for r in rows):
                assert time.monotonic() < deadline, "rows never answered 2xx"
                await asyncio.gather(*(send(session, r) for r in rows if r.statuses[-1] != 200))
                await asyncio.sleep(0.2)
            now = set(await workers.answering(session, "/readyz"))
            metrics = (await workers.answering(session, "/metrics", pids=1)).popitem()[1]
            return victim, now, metrics

    victim, now, metrics = asyncio.run(run())
    assert victim not in now and len(now) == 2  # the parent started a new worker
    assert set(map(int, now)) == workers.worker_pids()
    stored = Counter(e.items_id for e in events(settings))
    assert set(stored) == {item_id(r) for r in rows}  # every row answered 2xx is on Kafka
    # the killed worker's counts stay in the pod's sums: nothing went backwards
    answered = sum(r.statuses.count(200) for r in rows)
    assert counted(metrics, "accepted") + counted(metrics, "duplicate") >= answered
    assert workers.stop() == 0
