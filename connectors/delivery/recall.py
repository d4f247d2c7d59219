"""What the stale-copy filter knew, read back from Kafka when partitions are assigned, so
a copy is not sent twice however many times the process crashes.

A record read again after a crash may already have been handled by the process that
died. It was then either forwarded (a copy with a higher hop on a retry topic or the
DLQ, under the same key, hence the same partition number) or delivered (an attempt
record with outcome `delivered` carrying its hop). Both are found in Kafka:

1. For each assigned partition, read the records between the group's committed offset
   and the end: the candidates. Only records already due can have been handled; a
   retry partition is read up to its first record that nothing behind can precede.
2. From the earliest moment a candidate became due, read the same partition numbers of
   the input topics and the DLQ, and every partition of the attempts topic.
3. A later copy (hop H > h) makes every hop below H stale; a delivered attempt at hop
   >= h makes every copy stale. Nothing else is assumed: a copy is dropped only when
   its work is carried by another record that Kafka acknowledged.

The reads are bounded (`max_records` per partition, `timeout_s` in all, since they hold up
the assignment); past those bounds the filter starts with less memory, as it did before.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from hookstream.config import Settings
from hookstream.errors import DecodeError
from hookstream.io import consumer
from hookstream.policy import JITTER
from hookstream.records import ATTEMPTS, DLQ, AttemptRecord, Codec, DeliveryRequest, Outcome

log = logging.getLogger(__name__)
RECALL_GROUP = "hookstream-delivery-recall"  # never commits: a group id is required


class Recall:
    def __init__(self, settings: Settings, codec: Codec, topic_delay_s: dict[str, int],
                 clock: Callable[[], float] = time.time, max_records: int = 200_000,
                 timeout_s: float = 15.0):
        self._settings = settings
        self._codec = codec
        self._topic_delay_s = topic_delay_s
        self._clock = clock
        self._max_records = max_records
        self._timeout_s = timeout_s
        self._deadline = 0.0

    def hops(self, owner: Any, assigned: list[TopicPartition]) -> list[tuple[str, float]]:
        """(delivery id, hop handled) pairs for the stale filter; [] when nothing is known."""
        if not assigned:
            return []
        started = time.monotonic()
        self._deadline = started + self._timeout_s  # one budget for every call below
        reader = consumer(self._settings, RECALL_GROUP, {"enable.partition.eof": True})
        try:
            committed = owner.committed(assigned, timeout=self._left())
            candidates, since_ms = self._candidates(reader, committed)
            if not candidates:
                return []
            numbers = sorted({tp.partition for tp in assigned})
            topics = {tp.topic for tp in assigned} | {self._settings.topic(DLQ)}
            after = [TopicPartition(t, p, since_ms) for t in topics for p in numbers]
            attempts = self._settings.topic(ATTEMPTS)
            meta = reader.list_topics(attempts, timeout=self._left()).topics[attempts]
            after += [TopicPartition(attempts, p, since_ms) for p in meta.partitions]
            starts = reader.offsets_for_times(after, timeout=self._left())
            known = self._evidence(reader, [tp for tp in starts if tp.offset >= 0], candidates)
        except KafkaException as e:  # the broker is not back yet: start with less memory
            log.warning("stale-copy recall skipped after %.1fs (Kafka): %s",
                        time.monotonic() - started, e)
            return []
        finally:
            reader.close()
        took_s = time.monotonic() - started
        log.log(logging.WARNING if took_s > 2 else logging.INFO,
                "stale-copy recall: %d candidates, %d known handled, %.1fs", len(candidates),
                len(known), took_s)
        return list(known.items())

    def _left(self) -> float:
        return max(0.5, self._deadline - time.monotonic())

    def _candidates(self, reader: Any, committed: list[TopicPartition]
                    ) -> tuple[dict[str, int], int]:
        """Due records above the committed offsets: delivery id -> lowest hop, and the
        earliest time one of them became due."""
        now_ms = int(self._clock() * 1000)
        candidates: dict[str, int] = {}
        since_ms = now_ms
        starts = []
        for tp in committed:
            low, high = reader.get_watermark_offsets(tp, timeout=self._left())
            start = tp.offset if tp.offset >= 0 else low
            if start < high:
                starts.append((TopicPartition(tp.topic, tp.partition, start), high))
        stopped: set[tuple[str, int]] = set()
        for msg, request in self._read(reader, starts):
            at = (msg.topic(), msg.partition())
            if at in stopped:
                continue
            _, produced_ms = msg.timestamp()
            if request.not_before > now_ms:
                delay_s = self._topic_delay_s.get(at[0], 0)
                if produced_ms + (1 - JITTER) * delay_s * 1000 > now_ms:
                    stopped.add(at)  # nothing behind it is due yet
                continue
            hop = candidates.get(request.delivery_id, request.hop)
            candidates[request.delivery_id] = min(hop, request.hop)
            since_ms = min(since_ms, max(produced_ms, request.not_before))
        return candidates, since_ms

    def _evidence(self, reader: Any, starts: list[TopicPartition], candidates: dict[str, int]
                  ) -> dict[str, float]:
        """Hops handled, per candidate, from later copies and delivered attempts."""
        known: dict[str, float] = {}
        attempts = self._settings.topic(ATTEMPTS)
        ranges = []
        for tp in starts:
            _, high = reader.get_watermark_offsets(tp, timeout=self._left())
            if tp.offset < high:
                ranges.append((tp, high))
        for msg in self._messages(reader, ranges):
            key = (msg.key() or b"").decode(errors="replace")
            try:
                if msg.topic() == attempts:
                    if key not in candidates:
                        continue
                    attempt = self._codec.decode(msg.value(), msg.headers(), AttemptRecord)
                    if (attempt.outcome == Outcome.DELIVERED
                            and attempt.hop >= candidates[attempt.delivery_id]):
                        known[attempt.delivery_id] = math.inf
                    continue
                request = self._codec.decode(msg.value(), msg.headers(), DeliveryRequest)
            except DecodeError:
                continue
            handled = candidates.get(request.delivery_id)
            if handled is not None and request.hop > handled:
                # A later copy exists: every hop below it is handled.
                best = known.get(request.delivery_id, -1.0)
                known[request.delivery_id] = max(best, float(request.hop - 1))
        return known

    def _read(self, reader: Any, ranges: list[tuple[TopicPartition, int]]
              ) -> Iterator[tuple[Any, DeliveryRequest]]:
        for msg in self._messages(reader, ranges):
            try:
                yield msg, self._codec.decode(msg.value(), msg.headers(), DeliveryRequest)
            except DecodeError:
                continue

    def _messages(self, reader: Any, ranges: list[tuple[TopicPartition, int]]) -> Iterator[Any]:
        """The records of each (start, end) range, at most `max_records` per range."""
        if not ranges:
            return
        ends = {(tp.topic, tp.partition): min(end, tp.offset + self._max_records)
                for tp, end in ranges}
        reader.assign([tp for tp, _ in ranges])
        while ends and time.monotonic() < self._deadline:
            for msg in reader.consume(1000, 0.2):
                tp = (msg.topic(), msg.partition())
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        ends.pop(tp, None)
                    continue
                end = ends.get(tp)
                if end is None:
                    continue
                if msg.offset() + 1 >= end:
                    del ends[tp]
                if msg.offset() < end:
                    yield msg
        reader.unassign()
