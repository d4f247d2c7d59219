"""The ingest endpoint on the real broker: GLPI's native webhooks in, events on Kafka out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from connectors.ingest import serve
from hookstream.config import Settings
from hookstream.control import instances
from hookstream.devbroker import LocalBroker
from hookstream.io import create_topics, read_all
from hookstream.records import INSTANCES, ITEM_CHANGES, ItemChangeEvent
from hookstream.render import default_payload
from tests.conftest import FIXTURES, settings_for
from tests.fake_glpi import FakeGlpiSender
from tests.integration.harness import read

SECRET = "Zq8vM2kP0rT5wX9yB3nD6fH1jL4sA7cE0gI2uO5e"
BODIES = sorted(FIXTURES.glob("webhook_default_payloads/*.json"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningIngest:
    """`hookstream run ingest` in-process, on its own event loop in a thread."""

    def __init__(self, settings: Settings):
        self.settings = dataclasses.replace(
            settings, ingest_host="127.0.0.1", ingest_port=free_port()
        )
        self.url = f"http://127.0.0.1:{self.settings.ingest_port}"
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            await serve(self.settings, self._stopping)

        try:
            asyncio.run(main())
        except BaseException as e:
            self.error = e

    def __enter__(self) -> RunningIngest:
        self._thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.error is None:
            try:
                with socket.create_connection(("127.0.0.1", self.settings.ingest_port), 0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"ingest did not start: {self.error}")

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "ingest did not stop"


def apply_instances(settings: Settings, tmp_path: Path, *extra: dict[str, Any]) -> None:
    path = tmp_path / f"instances-{time.monotonic_ns()}.yaml"
    docs = [{"name": "glpi-a", "secret": SECRET, "api_url": "http://127.0.0.1:1/apirest.php",
             "app_token": "app-tok", "user_token": "user-tok"}, *extra]
    path.write_text(yaml.safe_dump({"instances": docs}))
    instances.apply_instances(settings, path)


def events(settings: Settings) -> list[ItemChangeEvent]:
    return read(settings, ITEM_CHANGES, ItemChangeEvent)  # type: ignore[no-any-return]


async def post_all(rows: list[Any], glpi: FakeGlpiSender) -> list[int]:
    async with FakeGlpiSender.session() as session:
        return [await glpi.attempt(session, row) for row in rows]


@pytest.fixture
def ingest(settings: Settings, tmp_path: Path) -> Iterator[RunningIngest]:
    create_topics(settings)
    apply_instances(settings, tmp_path, {"name": "closed", "secret": SECRET,
                                         "allowed_networks": ["10.0.0.0/8"]})
    with RunningIngest(dataclasses.replace(settings, ingest_max_body_bytes=20_000)) as running:
        yield running


def test_instances_apply_list_delete_keep_secrets_encrypted(
    settings: Settings, tmp_path: Path
) -> None:
    create_topics(settings)
    apply_instances(settings, tmp_path)
    listed = instances.list_instances(settings)
    assert [(r["name"], r["secret"], r["app_token"], r["user_token"]) for r in listed] == [
        ("glpi-a", "<redacted>", "<redacted>", "<redacted>")
    ]
    assert SECRET not in json.dumps(listed)
    raw = b"".join(m.value() or b"" for m in read_all(settings, settings.topic(INSTANCES)))
    assert raw and SECRET.encode() not in raw and b"app-tok" not in raw
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump({"instances": [{"name": "glpi-a"}]}))  # secrets kept
    [(record, state)] = instances.apply_instances(settings, path)
    assert state == "updated" and record.version == 2  # api_url dropped: a change
    [(record, state)] = instances.apply_instances(settings, path)
    assert state == "unchanged" and record.version == 2
    assert instances.delete_instance(settings, "glpi-a")
    assert instances.list_instances(settings) == []
    assert not instances.delete_instance(settings, "glpi-a")


def test_invalid_instances_list_every_error(settings: Settings, tmp_path: Path) -> None:
    from hookstream.errors import InvalidDefinition

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"instances": [
        {"name": "Bad Name", "allowed_networks": ["nope"], "api_url": "ftp://x"},
        {"secret": 3, "timestamp_tolerance_s": 5, "colour": "red"},
    ]}))
    with pytest.raises(InvalidDefinition) as info:
        instances.load_instances(path, instances.secret_box(settings), {})
    text = str(info.value)
    for expected in ("must be 1-63", "allowed_networks", "api_url", "name is required",
                     "secret must be a string", "at least 60", "unknown field 'colour'"):
        assert expected in text


def test_glpi_webhooks_become_events_shaped_like_produce(
    settings: Settings, ingest: RunningIngest
) -> None:
    glpi, now = FakeGlpiSender(SECRET), int(time.time())
    rows = [
        glpi.queue(f"{ingest.url}/glpi/glpi-a/{p.stem.rsplit('_', 1)[0]}", p.read_bytes(), now - i,
                   method=("POST", "PUT", "UPDATE", "GET")[i % 4])
        for i, p in enumerate(BODIES)
    ]
    assert asyncio.run(post_all(rows, glpi)) == [200] * len(rows)
    got = {e.itemtype: e for e in events(settings)}
    assert len(got) == len(BODIES)
    for path in BODIES:
        itemtype = path.stem.rsplit("_", 1)[0]
        event = got[itemtype]
        body = json.loads(path.read_bytes())
        assert event.key() == f"glpi-a:{itemtype}:{body['item']['id']}"
        assert (event.instance, event.event, event.source) == ("glpi-a", body["event"],
                                                               "glpi-webhook")
        parent = None if event.parent_item is None else json.loads(event.parent_item)
        # The default payload hookstream sends for this event is GLPI's body, byte for byte.
        assert default_payload(json.loads(event.item), event.event, parent) == path.read_bytes()


def test_glpi_retries_are_answered_without_a_second_event(
    settings: Settings, ingest: RunningIngest
) -> None:
    glpi, now = FakeGlpiSender(SECRET), int(time.time())
    url = f"{ingest.url}/glpi/glpi-a/Ticket"
    body = BODIES[-1].read_bytes()
    row = glpi.queue(url, body, now - 120)
    same_change_later = glpi.queue(url, body, now - 60)  # a second update, same state
    assert asyncio.run(post_all([row, row, row, same_change_later], glpi)) == [200] * 4
    got = events(settings)
    assert len(got) == 2
    assert len({e.event_id for e in got}) == 2


def raw_request(row: Any) -> bytes:
    path = row.url.split("/", 3)[3]
    head = [f"{row.method} /{path} HTTP/1.1", "Host: glpi", f"Content-Length: {len(row.body)}",
            *(f"{k}: {v}" for k, v in row.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + row.body


def exchange(sock: socket.socket, *pieces: bytes) -> int:
    """Send a request in `pieces` (apart in time), read one answer; its status."""
    for i, piece in enumerate(pieces):
        if i:
            time.sleep(0.2)
        sock.sendall(piece)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65_536)
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(65_536)
    return int(head.split()[1])


def test_update_is_read_as_its_connections_first_request_even_split_mid_method(
    settings: Settings, ingest: RunningIngest
) -> None:
    """Each connection starts on aiohttp's C parser, which cannot read UPDATE: a first
    request that does not start with a method it reads switches the connection to the
    Python parser. GLPI sends each webhook on a connection of its own."""
    glpi, now = FakeGlpiSender(SECRET), int(time.time())
    url = f"{ingest.url}/glpi/glpi-a/Ticket"
    body = BODIES[-1].read_bytes()
    update, post, late_update = (glpi.queue(url, body, now - n, method=m)
                                 for n, m in ((3, "UPDATE"), (2, "POST"), (1, "UPDATE")))
    address = ("127.0.0.1", ingest.settings.ingest_port)
    with socket.create_connection(address) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw = raw_request(update)
        assert exchange(sock, raw[:3], raw[3:]) == 200  # "UPD", then the rest
    with socket.create_connection(address) as sock:
        assert exchange(sock, raw_request(post)) == 200
        # UPDATE on a kept-alive connection opened by a POST: the C parser refuses it,
        # before any handler runs (a client that resends it on a new connection gets in)
        assert exchange(sock, raw_request(late_update)) == 400
    assert sorted(e.occurred_at // 1000 for e in events(settings)) == [now - 3, now - 2]


def test_chunked_bodies_are_read_up_to_the_limit(settings: Settings, ingest: RunningIngest) -> None:
    """A body without Content-Length (chunked) is read within the limit, then refused."""
    glpi, now = FakeGlpiSender(SECRET), int(time.time())
    url = f"{ingest.url}/glpi/glpi-a/Ticket"
    fits = glpi.queue(url, BODIES[-1].read_bytes(), now)
    too_big = glpi.queue(url, b"x" * 30_000, now)

    def chunked(row: Any) -> bytes:
        head = raw_request(row).split(b"\r\n\r\n")[0].replace(
            f"Content-Length: {len(row.body)}".encode(), b"Transfer-Encoding: chunked")
        pieces = [row.body[i:i + 4096] for i in range(0, len(row.body), 4096)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
        return head + b"\r\n\r\n" + chunks + b"0\r\n\r\n"

    address = ("127.0.0.1", ingest.settings.ingest_port)
    for row, status in ((fits, 200), (too_big, 413)):  # the limit is 20,000 bytes here
        with socket.create_connection(address) as sock:
            assert exchange(sock, chunked(row)) == status
    assert [e.occurred_at // 1000 for e in events(settings)] == [now]


def test_bad_requests_get_their_status_and_produce_nothing(
    settings: Settings, ingest: RunningIngest
) -> None:
    glpi, now = FakeGlpiSender(SECRET), int(time.time())
    base, body = f"{ingest.url}/glpi", BODIES[0].read_bytes()
    wrong = FakeGlpiSender("another-secret")
    rows = [
        glpi.queue(f"{base}/nowhere/Ticket", body, now),  # unknown instance
        wrong.queue(f"{base}/glpi-a/Ticket", body, now),  # wrong secret
        glpi.queue(f"{base}/glpi-a/Ticket", body, now - 7200),  # beyond the tolerance
        glpi.queue(f"{base}/glpi-a/Ticket", b'{"item": {"id": 1}, "event": "purge"}', now),
        glpi.queue(f"{base}/glpi-a/Ticket", b"x" * 20_001, now),  # over the limit
        glpi.queue(f"{base}/closed/Ticket", body, now),  # 127.0.0.1 is not in 10.0.0.0/8
    ]
    assert asyncio.run(post_all(rows, glpi)) == [404, 401, 401, 400, 413, 403]

    async def unsigned_and_reasons() -> tuple[int, dict[str, Any]]:
        async with FakeGlpiSender.session() as session:
            async with session.post(f"{base}/glpi-a/Ticket", data=body) as r1:
                assert r1.status == 401
            row = glpi.queue(f"{base}/glpi-a/Ticket", b'{"item": {"id": 1}, "event": "x"}', now)
            async with session.post(row.url, data=row.body, headers=row.headers) as r2:
                return r2.status, await r2.json()

    status, answer = asyncio.run(unsigned_and_reasons())
    assert status == 400 and "event must be new, update or delete" in answer["error"]
    assert events(settings) == []


def test_cra_challenge_health_and_metrics(ingest: RunningIngest) -> None:
    glpi = FakeGlpiSender(SECRET)

    async def probe() -> tuple[bool, bool, int, str]:
        async with FakeGlpiSender.session() as session:
            ok = await glpi.challenge(session, f"{ingest.url}/glpi/glpi-a/Ticket?x=1")
            forged = await FakeGlpiSender("wrong").challenge(
                session, f"{ingest.url}/glpi/glpi-a/Ticket")
            async with session.get(f"{ingest.url}/readyz") as ready:
                status = ready.status
            async with session.get(f"{ingest.url}/metrics") as m:
                text = await m.text()
            return ok, forged, status, text

    ok, forged, ready, text = asyncio.run(probe())
    assert ok and not forged and ready == 200
    assert 'hookstream_ingest_requests_total{glpi_instance="glpi-a",outcome="challenge"}' in text
    assert SECRET not in text


@pytest.mark.slow
def test_broker_down_gives_503_then_glpi_retries_deliver_every_event_once(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        settings_for(own_broker.bootstrap, tmp_path), ingest_produce_timeout_s=1.0
    )
    create_topics(settings)
    apply_instances(settings, tmp_path)
    glpi, now = FakeGlpiSender(SECRET), int(time.time())
    with RunningIngest(settings) as ingest:
        url = f"{ingest.url}/glpi/glpi-a/Ticket"
        before = glpi.queue(url, BODIES[-1].read_bytes(), now - 5)
        assert asyncio.run(post_all([before], glpi)) == [200]
        own_broker.stop()
        rows = [glpi.queue(url, p.read_bytes(), now - i) for i, p in enumerate(BODIES)]
        started = time.monotonic()
        assert asyncio.run(post_all(rows, glpi)) == [503] * len(rows)
        assert time.monotonic() - started < len(rows) * 3  # bounded: answered before GLPI's 5 s
        own_broker.start()
        deadline = time.monotonic() + 60  # GLPI's cron: retry every row until it gets 2xx
        while any(r.statuses[-1] >= 400 for r in rows) and time.monotonic() < deadline:
            asyncio.run(post_all([r for r in rows if r.statuses[-1] >= 400], glpi))
            time.sleep(0.5)
        assert [r.statuses[-1] for r in rows] == [200] * len(rows)
        assert asyncio.run(post_all([before, *rows], glpi)) == [200] * (len(rows) + 1)
    got = events(settings)
    ids = [json.loads(p.read_bytes())["item"]["id"] for p in [BODIES[-1], *BODIES]]
    assert sorted(e.items_id for e in got) == sorted(ids)  # each once, none lost
    assert len({e.event_id for e in got}) == len(got)


def test_sigkill_loses_only_requests_not_yet_answered_2xx(
    settings: Settings, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    from tests.integration.harness import cli_env

    create_topics(settings)
    apply_instances(settings, tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookstream.cli", "run", "ingest"],
        env=cli_env(settings, ingest_host="127.0.0.1", ingest_port=str(port),
                    ingest_workers="1"),  # one process: tests/integration/test_ingest_workers.py
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    glpi, now = FakeGlpiSender(SECRET), int(time.time())
    template = BODIES[-1].read_bytes()
    marker = b'"id": 4211'
    rows = [glpi.queue(f"http://127.0.0.1:{port}/glpi/glpi-a/Ticket",
                       template.replace(marker, f'"id": {100_000 + n}'.encode(), 1), now)
            for n in range(400)]

    async def load() -> list[int]:
        async with FakeGlpiSender.session() as session:
            deadline = time.monotonic() + 60
            while True:  # wait for readiness
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "ingest did not start"
                await asyncio.sleep(0.2)

            async def one(row: Any) -> int:
                try:
                    return await glpi.attempt(session, row)
                except aiohttp.ClientError:
                    return 0  # the connection died with the process: no answer

            async def killer() -> None:
                while sum(1 for r in rows if r.statuses and r.statuses[-1] == 200) < 100:
                    await asyncio.sleep(0.005)
                proc.send_signal(signal.SIGKILL)

            kill = asyncio.create_task(killer())
            statuses = await asyncio.gather(*(one(r) for r in rows))
            await kill
            return list(statuses)

    try:
        statuses = asyncio.run(load())
    finally:
        proc.kill()
        proc.wait(10)
    answered = {json.loads(r.body)["item"]["id"] for r, s in zip(rows, statuses, strict=True)
                if s == 200}
    assert 100 <= len(answered) < len(rows)  # killed mid-stream
    stored = {e.items_id for e in events(settings)}
    assert answered <= stored  # every request answered 2xx is on Kafka
