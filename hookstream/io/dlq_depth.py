"""`hookstream_dlq_depth`: the records still dead-lettered, as `hookstream dlq list` counts them.

A follower reads the DLQ topics and the redrive ledger from the beginning with a consumer
of its own (read_committed: aborted records and transaction markers are never seen), then
keeps up with them. It keeps, per DLQ partition, the offsets of the records it read (an
`array` of 8-byte integers, no keys, values or headers) and the ledger's redriven
positions (records/redriven.py, the rule `dlq list` uses). Depth per topic is the records
at or above each partition's low watermark minus the redriven positions among them.
Offsets below the low watermark are dropped at every refresh, so memory is bounded by
what the DLQ retains: 8 bytes per retained record, plus a set entry per retained record
that was redriven.

The item-changes DLQ has no ledger (its records are not redriven): its depth is the
records it retains. Undecodable DLQ records count (they are still there, and `dlq list`
cannot show them only because it cannot decode them).
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections.abc import Collection

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from hookstream.records.redriven import RedriveLedger

TP = tuple[str, int]
READ_BUDGET_S = 1.0  # the longest one refresh reads before publishing what it has


class DeadLetterCount:
    """Record offsets per DLQ partition and the ledger; pure (fed records, asked depths)."""

    def __init__(self, topics: Collection[str], ledgered: str) -> None:
        self.topics, self.ledgered = tuple(topics), ledgered  # ledgered: the redrivable DLQ
        self.offsets: dict[TP, array[int]] = {}
        self.ledger = RedriveLedger()

    def record(self, topic: str, partition: int, offset: int) -> None:
        offsets = self.offsets.setdefault((topic, partition), array("q"))
        if not offsets or offset > offsets[-1]:  # ascending; a re-read changes nothing
            offsets.append(offset)

    def trim(self, lows: dict[TP, int]) -> None:
        """Forget what retention removed."""
        for (topic, partition), low in lows.items():
            offsets = self.offsets.get((topic, partition))
            if offsets:
                del offsets[:bisect.bisect_left(offsets, low)]
            if topic == self.ledgered:
                self.ledger.forget_below(partition, low)

    def depth(self, lows: dict[TP, int]) -> dict[tuple[str, ...], float]:
        """Still dead-lettered, per topic, among the partitions whose low watermark is known."""
        got: dict[tuple[str, ...], float] = {(t,): 0.0 for t in self.topics}
        for (topic, partition), low in lows.items():
            offsets = self.offsets.get((topic, partition), array("q"))
            if topic == self.ledgered:
                got[(topic,)] += self.ledger.still_dead(partition, offsets, low)
            else:
                got[(topic,)] += len(offsets) - bisect.bisect_left(offsets, low)
        return got


class DeadLetterFollower:
    """The Kafka side of DeadLetterCount, driven by the gauges' background thread."""

    def __init__(self, client: Consumer, dlq_topics: Collection[str], dlq: str, ledger: str,
                 timeout_s: float) -> None:
        self._client, self._ledger, self._timeout_s = client, ledger, timeout_s
        self.count = DeadLetterCount(dlq_topics, dlq)
        self._assigned: set[TP] = set()
        self._behind: set[TP] = set()  # assigned, end not reached since assignment
        self._ends: dict[TP, int] = {}  # high watermarks when assigned
        self.caught_up = False  # every partition read to its end once: depth is meaningful

    def refresh(self, lows: dict[TP, int]) -> dict[tuple[str, ...], float] | None:
        """Read what arrived since the last refresh; the depth once caught up, else None."""
        self._assign()
        deadline = time.monotonic() + READ_BUDGET_S
        while time.monotonic() < deadline:
            msg = self._client.poll(0.1)
            if msg is None:
                if not self._behind:
                    break
                continue
            tp = (msg.topic() or "", msg.partition() or 0)
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._behind.discard(tp)
                continue
            offset = msg.offset() or 0
            if tp[0] == self._ledger:
                self.count.ledger.read(msg.key(), msg.value())
            else:
                self.count.record(tp[0], tp[1], offset)
            if offset + 1 >= self._ends.get(tp, 0):
                self._behind.discard(tp)
        self.count.trim(lows)
        self.caught_up = self.caught_up or not self._behind
        return self.count.depth(lows) if self.caught_up else None

    def _assign(self) -> None:
        """Every partition of the DLQ topics and the ledger, from the beginning; new
        partitions as they appear."""
        found = []
        for topic in (*self.count.topics, self._ledger):
            meta = self._client.list_topics(topic, timeout=self._timeout_s).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            found += [(topic, p) for p in meta.partitions if (topic, p) not in self._assigned]
        for tp in found:
            low, high = self._client.get_watermark_offsets(
                TopicPartition(*tp), self._timeout_s, cached=False) or (0, 1)
            self._ends[tp] = high
            if high > low:  # an empty partition has nothing to catch up on
                self._behind.add(tp)
        if found:
            self._client.incremental_assign(
                [TopicPartition(t, p, OFFSET_BEGINNING) for t, p in found])
            self._assigned.update(found)

    def close(self) -> None:
        self._client.close()
