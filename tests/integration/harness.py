"""Running pipeline components in-process for integration tests."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from connectors.delivery import DeliveryService
from hookstream.config import Settings
from hookstream.control import admin
from hookstream.io import create_topics, flush, producer, read_all
from hookstream.records import (
    ATTEMPTS,
    DELIVERIES,
    AttemptRecord,
    Codec,
    DeliveryRequest,
    Record,
    delivery_id_for,
    topic_schema,
)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a `hookstream` subprocess exactly these settings."""
    env = dict(os.environ)
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        env[f"HOOKSTREAM_{field.name.upper()}"] = text
    env.update({f"HOOKSTREAM_{k.upper()}": v for k, v in extra.items()})
    return env


class RunningDelivery:
    """A DeliveryService on its own event loop in a thread."""

    def __init__(self, settings: Settings, **kwargs: Any):
        self.settings = settings
        self.kwargs = kwargs
        self.service: DeliveryService | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self.service = DeliveryService(self.settings, **self.kwargs)
            self._started.set()
            await self.service.run()

        try:
            asyncio.run(main())
        except BaseException as e:  # reported by stop()
            self.error = e
            self._started.set()

    def __enter__(self) -> RunningDelivery:
        self._thread.start()
        assert self._started.wait(60)
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self.service is not None:
            self._loop.call_soon_threadsafe(self.service.stopping.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "delivery service did not stop"
        if self.error:
            raise self.error


def apply_webhooks(settings: Settings, tmp_path: Path, *hooks: dict[str, Any]) -> None:
    create_topics(settings)
    path = tmp_path / f"hooks-{time.monotonic_ns()}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "webhooks": [
                    {
                        "instance": "glpi-a",
                        "name": h["id"],
                        "itemtype": "Ticket",
                        "event": "new",
                        "is_active": True,
                        **h,
                    }
                    for h in hooks
                ]
            }
        )
    )
    admin.apply_webhooks(settings, path)


def request_for(
    webhook_id: str, url: str, n: int = 0, body: bytes = b'{"n": 0}', method: str = "POST"
) -> DeliveryRequest:
    event_id = f"event-{n}"
    return DeliveryRequest(
        delivery_id=delivery_id_for(event_id, webhook_id),
        webhook_id=webhook_id,
        instance="glpi-a",
        event_id=event_id,
        itemtype="Ticket",
        items_id=n,
        event="new",
        method=method,
        url=url,
        body=body,
        created_at=int(time.time() * 1000),
        headers={"Content-Type": "application/json"},
    )


def publish(settings: Settings, records: Sequence[Record | bytes], topic: str = DELIVERIES) -> None:
    """Records (encoded) or raw bytes (undecodable input, framed as the topic's schema)."""
    codec, prod, name = Codec(), producer(settings), settings.topic(topic)
    for record in records:
        if isinstance(record, bytes):
            prod.produce(name, record, b"undecodable",
                         headers=[("hookstream-schema", topic_schema(topic).encode())])
            continue
        value, headers = codec.encode(record, name)
        prod.produce(name, value, record.key().encode(), headers=headers)
    flush(prod)


def read(
    settings: Settings, topic: str, kind: type[Any], keep: Callable[[Any], bool] = lambda r: True
) -> list[Any]:
    codec = Codec()
    out = [
        codec.decode(m.value(), m.headers(), kind)
        for m in read_all(settings, settings.topic(topic), timeout_s=10)
    ]
    return [r for r in out if keep(r)]


def attempts_of(settings: Settings, webhook_id: str) -> list[AttemptRecord]:
    """A webhook's attempt records, in the order they were made."""
    found = read(settings, ATTEMPTS, AttemptRecord, lambda a: a.webhook_id == webhook_id)
    return sorted(found, key=lambda a: (a.started_at, a.finished_at))


def wait_until(condition: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


__all__ = [
    "Record",
    "RunningDelivery",
    "apply_webhooks",
    "publish",
    "read",
    "request_for",
    "wait_until",
]
