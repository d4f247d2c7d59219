"""The poller's Kafka side: events out, cursors on their compacted topic.

`produce` returns only once Kafka acknowledged every event of the page (or raises
TransientError): the caller saves the cursor after it, so a crash between the two repeats
the page, with the same event ids, and never skips it.
"""

from __future__ import annotations

from collections.abc import Sequence

from hookstream.config import Settings
from hookstream.errors import TransientError
from hookstream.io import codec_for, delivery_callback, flush, producer, read_table
from hookstream.records import ITEM_CHANGES, POLLER_CURSORS, ItemChangeEvent, PollCursor


class KafkaOut:
    """One idempotent producer for the events and the cursors of a poller."""

    def __init__(self, settings: Settings, ack_timeout_s: float = 30.0):
        self._codec, self._producer = codec_for(settings), producer(settings)
        self._events, self._cursors = settings.topic(ITEM_CHANGES), settings.topic(POLLER_CURSORS)
        self._timeout_s = ack_timeout_s

    def _send(self, topic: str, records: Sequence[ItemChangeEvent | PollCursor]) -> None:
        errors: list[str] = []
        for record in records:
            value, headers = self._codec.encode(record, topic)
            self._producer.produce(topic, value, record.key().encode(), headers=headers,
                                   on_delivery=delivery_callback(errors))
            self._producer.poll(0)
        flush(self._producer, self._timeout_s)
        if errors:
            raise TransientError(f"not acknowledged by Kafka: {errors[0]}")

    def produce(self, events: Sequence[ItemChangeEvent]) -> None:
        self._send(self._events, events)

    def save(self, cursor: PollCursor) -> None:
        self._send(self._cursors, [cursor])


def load_cursors(settings: Settings, instance: str) -> dict[str, PollCursor]:
    """The latest cursor of every stream of `instance`, by key."""
    return read_table(settings, POLLER_CURSORS, PollCursor, f"{instance}:")
