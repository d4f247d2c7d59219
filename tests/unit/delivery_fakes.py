"""In-memory stand-ins for the delivery loop's ports: a consumer fed by the test, a
producer that keeps what it got, a recording sender answering from a script."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from connectors.delivery import DeliveryService
from connectors.delivery.http import HttpResult, Target
from hookstream.config import Settings, load_settings
from hookstream.policy import Network, secret_box
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    DLQ,
    AttemptRecord,
    Codec,
    DeliveryRequest,
    WebhookDefinition,
)

CODEC = Codec()


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(env={}, check_dns=False, state_dir=str(tmp_path / "state"),
                         retry_tiers="1s,2s,3s", **overrides)


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes
    _headers: Any
    _key: bytes = b""
    _timestamp_ms: int = 0

    def error(self) -> Any:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> Any:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp_ms)


@dataclass
class FakeConsumer:
    """Hands out the queued messages of partitions that are not paused, in order."""

    queued: list[FakeMessage] = field(default_factory=list)
    paused: set[tuple[str, int]] = field(default_factory=set)
    pauses: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, seek)
    resumes: list[tuple[str, int]] = field(default_factory=list)
    stored: dict[tuple[str, int], int] = field(default_factory=dict)
    closed: bool = False
    _next: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, topic: str, partition: int, record: DeliveryRequest,
            produced_ms: int = 0) -> None:
        value, headers = CODEC.encode(record, topic)
        offset = sum(1 for m in self.queued if (m._topic, m._partition) == (topic, partition))
        self.queued.append(FakeMessage(topic, partition, offset, value, headers,
                                       record.key().encode(), produced_ms))

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.topics = topics

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        out = []
        for m in self.queued:
            tp = (m._topic, m._partition)
            if tp in self.paused or m._offset < self._next.get(tp, 0):
                continue
            if len(out) >= num_messages:
                break
            out.append(m)
            self._next[tp] = m._offset + 1
        if not out and timeout > 0:
            time.sleep(0.002)  # an idle broker: do not spin
        return out

    def pause(self, partitions: list[Any]) -> None:
        for p in partitions:
            self.paused.add((p.topic, p.partition))

    def seek(self, partition: Any) -> None:
        self._next[(partition.topic, partition.partition)] = partition.offset
        self.pauses.append((partition.topic, partition.partition, partition.offset))

    def resume(self, partitions: list[Any]) -> None:
        for p in partitions:
            self.paused.discard((p.topic, p.partition))
            self.resumes.append((p.topic, p.partition))

    def store_offsets(self, message: Any = None, offsets: list[Any] | None = None) -> None:
        for p in offsets or []:
            self.stored[(p.topic, p.partition)] = p.offset

    def commit(self, message: Any = None, offsets: Any = None, asynchronous: bool = True) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeError:
    def __init__(self, fatal: bool = False) -> None:
        self._fatal = fatal

    def fatal(self) -> bool:
        return self._fatal

    def code(self) -> int:
        return KafkaError._MSG_TIMED_OUT

    def __str__(self) -> str:
        return "Local: Message timed out"


@dataclass
class FakeProducer:
    """Keeps produced records; acknowledges them on poll, failing the first `fail` ones."""

    fail: int = 0
    records: list[tuple[str, bytes, Any]] = field(default_factory=list)
    failed: int = 0
    _pending: list[tuple[Callable[[Any, Any], None], tuple[str, bytes, Any]]] = field(
        default_factory=list)

    def produce(self, topic: str, value: Any = None, key: Any = None, partition: int = -1,
                on_delivery: Callable[[Any, Any], None] | None = None, timestamp: int = 0,
                headers: Any = None) -> None:
        assert on_delivery is not None
        self._pending.append((on_delivery, (topic, value, headers)))

    def poll(self, timeout: float = -1) -> int:
        pending, self._pending = self._pending, []
        for callback, record in pending:
            if self.failed < self.fail:
                self.failed += 1
                callback(FakeError(), None)
            else:
                self.records.append(record)
                callback(None, None)
        return len(pending)

    def flush(self, timeout: float = -1) -> int:
        self.poll()
        return 0

    def on(self, topic: str) -> list[Any]:
        kind = AttemptRecord if topic.endswith(ATTEMPTS) else DeliveryRequest
        return [CODEC.decode(v, h, kind) for t, v, h in self.records if t == topic]


class FakeTables:
    def catch_up(self, timeout_s: float = 60.0) -> None:
        pass

    def poll(self, timeout_s: float = 0.0, max_records: int = 500) -> int:
        return 0

    def close(self) -> None:
        pass


@dataclass
class RecordingSender:
    """Answers from `script(request, target)`; keeps every request it was given. While
    `gate` is set, requests wait on it (a receiver that does not answer yet)."""

    script: Callable[[DeliveryRequest, Target], HttpResult] = lambda r, t: HttpResult(200)
    sent: list[DeliveryRequest] = field(default_factory=list)
    gate: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0

    async def send(self, request: DeliveryRequest, target: Target,
                   global_allow: tuple[Network, ...] = ()) -> HttpResult:
        self.sent.append(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            return self.script(request, target)
        finally:
            self.in_flight -= 1


def webhook(settings: Settings, webhook_id: str, url: str, **extra: Any) -> WebhookDefinition:
    box = secret_box(settings)
    return WebhookDefinition(id=webhook_id, version=1, instance="glpi-a", name=webhook_id,
                             itemtype="Ticket", event="new", url=url,
                             secret_encrypted=box.encrypt("s" * 40),
                             clientsecret_encrypted=box.encrypt(""), is_active=True, **extra)


def request(webhook_id: str, url: str, n: int, **extra: Any) -> DeliveryRequest:
    return DeliveryRequest(delivery_id=f"{webhook_id}-{n}", webhook_id=webhook_id,
                           instance="glpi-a", event_id=f"e{n}", itemtype="Ticket", items_id=n,
                           event="new", method="POST", url=url, body=b"{}",
                           **{"created_at": 0, **extra})


def service(settings: Settings, consumer: FakeConsumer, producer: FakeProducer,
            sender: RecordingSender, *hooks: WebhookDefinition,
            clock: Callable[[], float] = lambda: 1000.0) -> DeliveryService:
    svc = DeliveryService(settings, clock, lambda: 0.5, source=consumer, sink=producer,
                          sender=sender, tables=FakeTables(), codec=CODEC)
    for hook in hooks:
        svc.on_webhook(hook.id, hook)
    return svc


async def run_until(svc: DeliveryService, done: Callable[[], bool],
                    timeout_s: float = 5.0) -> None:
    """Run the loop until `done()` holds (checked every few ms), then stop it."""
    task = asyncio.get_running_loop().create_task(svc.run())
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
    finally:
        svc.stopping.set()
        await task


__all__ = ["ATTEMPTS", "DELIVERIES", "DLQ"]
