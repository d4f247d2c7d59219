"""Producing records for HTTP requests and waiting for Kafka's acknowledgement, from asyncio
(`run ingest`, `run alerts`: a request is answered 2xx only once its records are acknowledged).

One idempotent producer with acks=all (a broker retry never duplicates a record, and an
acknowledged record is on every in-sync replica). librdkafka runs delivery callbacks
inside `poll`; a task of the event loop polls every millisecond while records await
their acknowledgement, so callbacks resolve futures on the loop itself, with no thread
handing over the GIL and no cross-thread wake-up per record.
"""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaError, KafkaException, Message

from hookstream.config import Settings
from hookstream.errors import TransientError
from hookstream.io.kafka import producer, translate
from hookstream.records import AlertEvent, Codec, ItemChangeEvent

POLL_EVERY_S = 0.001


class EventSink:
    """`submit(event)` produces it; the future it returns settles on Kafka's answer."""

    def __init__(self, settings: Settings, topic: str, codec: Codec, answer_within_s: float):
        self._topic, self._codec = topic, codec
        # A record not acknowledged within the bound is failed by librdkafka itself, so a
        # broker outage cannot keep records forever that the sender was told (503) to resend.
        timeout_ms = int(answer_within_s * 1000)
        self._producer = producer(
            settings,
            {
                "acks": "all",
                "message.timeout.ms": max(timeout_ms * 10, 30_000),
                "queue.buffering.max.messages": 100_000,
            },
        )
        self._pending = 0
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            self._producer.poll(0)
            await asyncio.sleep(POLL_EVERY_S)

    def submit(self, event: ItemChangeEvent | AlertEvent) -> asyncio.Future[None]:
        """Produce now; the future settles on Kafka's acknowledgement (TransientError if
        Kafka refuses it). Raises TransientError when the producer queue is full."""
        loop = asyncio.get_running_loop()
        if self._pump is None:
            self._pump = loop.create_task(self._poll())
        done: asyncio.Future[None] = loop.create_future()
        value, headers = self._codec.encode(event, self._topic)

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._pending -= 1
            if done.done():
                return
            if err is None:
                done.set_result(None)
            else:
                done.set_exception(TransientError(f"Kafka did not take the event: {err}"))

        try:
            self._producer.produce(
                self._topic, value, event.key().encode(), headers=headers,
                on_delivery=on_delivery,
            )
        except BufferError as e:
            raise TransientError(f"Kafka producer queue full: {e}") from e
        except KafkaException as e:
            raise translate(e, "Kafka producer unavailable") from e
        self._pending += 1
        self._wake.set()
        return done

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush (callbacks run here); returns how many records were still unacknowledged."""
        if self._pump is not None:
            self._pump.cancel()
        return int(self._producer.flush(timeout_s))
