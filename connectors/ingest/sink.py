"""Producing ingested events and waiting for Kafka's acknowledgement, from asyncio.

One idempotent producer with acks=all (a broker retry never duplicates a record, and an
acknowledged record is on every in-sync replica). librdkafka calls back from `poll`, which
a daemon thread runs; each callback resolves the request's future on the event loop.
"""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError, KafkaException, Message

from hookstream.config import Settings
from hookstream.errors import TransientError
from hookstream.io import producer
from hookstream.records import Codec, ItemChangeEvent


class EventSink:
    """`await send(event)` returns once Kafka has the event, or raises TransientError."""

    def __init__(self, settings: Settings, topic: str, codec: Codec):
        self._topic, self._codec = topic, codec
        # A record not acknowledged within the bound is failed by librdkafka itself, so a
        # broker outage cannot pile up records that GLPI has already been told to resend.
        timeout_ms = int(settings.ingest_produce_timeout_s * 1000)
        self._producer = producer(
            settings,
            {
                "acks": "all",
                "message.timeout.ms": max(timeout_ms * 10, 30_000),
                "queue.buffering.max.messages": 100_000,
            },
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="ingest-acks")
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, event: ItemChangeEvent) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        value, headers = self._codec.encode(event, self._topic)

        def settle(err: KafkaError | None) -> None:
            if done.done():
                return
            if err is None:
                done.set_result(None)
            else:
                done.set_exception(TransientError(f"Kafka did not take the event: {err}"))

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(settle, err)

        try:
            self._producer.produce(
                self._topic, value, event.key().encode(), headers=headers,
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as e:
            raise TransientError(f"Kafka producer queue unavailable: {e}") from e
        await done

    def close(self, timeout_s: float = 10.0) -> int:
        """Stop polling and flush; returns how many records were still unacknowledged."""
        self._stop.set()
        self._thread.join(5)
        return int(self._producer.flush(timeout_s))
