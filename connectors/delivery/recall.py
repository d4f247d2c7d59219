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

The reads are bounded (`max_records` per partition, `timeout_s` in all); past those bounds
the filter starts with less memory, as it did before.

The recall runs beside the loop, not in front of it (RecallGate): only the deliveries it
may have something to say about wait for it. What it returns is a hop handled for some of
its candidates, nothing about any other delivery id; and a delivery id determines its
record key (webhook:itemtype:item). So a record whose delivery id and key are no
candidate's gets the same verdict from the stale filter before the recall ends as after
it, and goes at once; a record of a key in question waits, with the records of that key
behind it, so an item's records keep their partition's order. Until the candidates are
read (the records between the committed offsets and the ends: a short read, the backlog of
a member that died seconds ago) every record waits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TopicPartition

from connectors.delivery.ports import TP, Job
from connectors.delivery.schedule import earliest_due_ms
from hookstream.config import Settings
from hookstream.errors import DecodeError, KafkaFailed
from hookstream.io import BOUNDED_PREFETCH, consumer, kafka_errors, read_ranges
from hookstream.records import ATTEMPTS, DLQ, AttemptRecord, Codec, DeliveryRequest, Outcome

log = logging.getLogger(__name__)
RECALL_GROUP = "hookstream-delivery-recall"  # never commits: a group id is required
MAX_WAITING = 5000  # records waiting for a recall before the partitions they come from pause


@dataclass(frozen=True, slots=True)
class InQuestion:
    """What a recall may find handled: its candidates' delivery ids, and their keys."""

    delivery_ids: frozenset[str]
    keys: frozenset[str]

    def holds(self, request: DeliveryRequest) -> bool:
        return request.delivery_id in self.delivery_ids or request.key() in self.keys


Submit = Callable[[Job], None]


class RecallGate:
    """Holds the dispatches the running recall may have something to say about (see the
    module docstring), and lets them go in the order they came once it has said it.

    Every method runs on the loop; a recall's thread posts `known` and `recalled` with the
    assignment it was started for, and a later assignment makes them stale (its seed is
    still applied: what Kafka says was handled stays true). `owns(tp, generation)` is the
    checkpoint's: a record read before its partition was revoked is dropped, its new owner
    reads it again. Past `max_waiting` records, the partition a new one comes
    from is paused until the recall ends (`pause` and `lift`), so memory stays bounded.
    """

    def __init__(self, submit: Submit, seed: Callable[[list[tuple[str, float]]], None],
                 owns: Callable[[TP, int], bool], pause: Callable[[TP], None],
                 lift: Callable[[TP], None], max_waiting: int = MAX_WAITING):
        self._submit = submit
        self._seed = seed
        self._owns = owns
        self._pause = pause
        self._lift = lift
        self._max_waiting = max_waiting
        self._assignment = 0  # the assignment whose recall runs; 0: none runs
        self._in_question: InQuestion | None = None  # None: not known yet, all wait
        self._waiting: list[Job] = []
        self._waiting_keys: set[str] = set()  # a record behind one of these waits too
        self._paused: set[TP] = set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, job: Job) -> None:
        """Submit now, or after the recall if it may make this record stale."""
        request = job.request
        if self._assignment and (self._in_question is None or self._in_question.holds(request)
                                 or request.key() in self._waiting_keys):
            self._waiting.append(job)
            self._waiting_keys.add(request.key())
            if len(self._waiting) >= self._max_waiting and job.tp not in self._paused:
                self._paused.add(job.tp)
                self._pause(job.tp)
            return
        self._submit(job)

    def assigned(self, assignment: int) -> None:
        """A new assignment, whose recall has started: everything waits until its
        candidates are known."""
        self._assignment, self._in_question = assignment, None
        self._go(lambda _: True)  # what waits from revoked partitions is dropped

    def known(self, assignment: int, in_question: InQuestion) -> None:
        """The recall's candidates are read: what is not in question goes."""
        if assignment != self._assignment:
            return
        self._in_question = in_question
        self._go(in_question.holds)

    def recalled(self, assignment: int, hops: list[tuple[str, float]]) -> None:
        """The recall is done: the stale filter learns what it found, then everything goes."""
        self._seed(hops)
        if assignment != self._assignment:
            return
        self._assignment, self._in_question = 0, None
        self._go(lambda _: False)
        for tp in self._paused:
            self._lift(tp)
        self._paused.clear()

    def _go(self, still_waits: Callable[[DeliveryRequest], bool]) -> None:
        """Submit, in order, the waiting records of partitions still owned, except those
        `still_waits` keeps (and, behind each of those, the records of its key)."""
        waiting, self._waiting, self._waiting_keys = self._waiting, [], set()
        for job in waiting:
            if not self._owns(job.tp, job.generation):
                continue  # revoked since: its new owner reads it again
            key = job.request.key()
            if key in self._waiting_keys or still_waits(job.request):
                self._waiting_keys.add(key)
                self._waiting.append(job)
            else:
                self._submit(job)


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

    def hops(self, owner: Any, assigned: list[TopicPartition],
             on_candidates: Callable[[InQuestion], object] = lambda _: None,
             ) -> list[tuple[str, float]]:
        """(delivery id, hop handled) pairs for the stale filter; [] when nothing is known.
        `on_candidates` is told which deliveries are in question once the candidates are
        read (before their evidence is)."""
        if not assigned:
            on_candidates(InQuestion(frozenset(), frozenset()))
            return []
        started = time.monotonic()
        self._deadline = started + self._timeout_s  # one budget for every call below
        reader = consumer(self._settings, RECALL_GROUP, {"enable.partition.eof": True},
                          defaults=BOUNDED_PREFETCH)
        try:
            with kafka_errors("the stale-copy recall"):
                candidates, known = self._known(owner, reader, assigned, on_candidates)
        except KafkaFailed as e:  # the broker is not back yet: start with less memory
            log.warning("stale-copy recall skipped after %.1fs (Kafka): %s",
                        time.monotonic() - started, e)
            return []
        finally:
            reader.close()
        if not candidates:
            return []
        took_s = time.monotonic() - started
        log.log(logging.WARNING if took_s > 2 else logging.INFO,
                "stale-copy recall: %d candidates, %d known handled, %.1fs", len(candidates),
                len(known), took_s)
        return list(known.items())

    def _known(self, owner: Any, reader: Any, assigned: list[TopicPartition],
               on_candidates: Callable[[InQuestion], object],
               ) -> tuple[dict[str, int], dict[str, float]]:
        """The candidates (step 1, told to `on_candidates` at once) and the hops known
        handled among them (steps 2, 3)."""
        committed = owner.committed(assigned, timeout=self._left())
        candidates, keys, since_ms = self._candidates(reader, committed)
        on_candidates(InQuestion(frozenset(candidates), keys))
        if not candidates:
            return candidates, {}
        numbers = sorted({tp.partition for tp in assigned})
        topics = {tp.topic for tp in assigned} | {self._settings.topic(DLQ)}
        after = [TopicPartition(t, p, since_ms) for t in topics for p in numbers]
        attempts = self._settings.topic(ATTEMPTS)
        meta = reader.list_topics(attempts, timeout=self._left()).topics[attempts]
        after += [TopicPartition(attempts, p, since_ms) for p in meta.partitions]
        starts = reader.offsets_for_times(after, timeout=self._left())
        known = self._evidence(reader, [tp for tp in starts if tp.offset >= 0], candidates)
        return candidates, known

    def _left(self) -> float:
        return max(0.5, self._deadline - time.monotonic())

    def _candidates(self, reader: Any, committed: list[TopicPartition]
                    ) -> tuple[dict[str, int], frozenset[str], int]:
        """Due records above the committed offsets: delivery id -> lowest hop, their record
        keys, and the earliest time one of them became due."""
        now_ms = int(self._clock() * 1000)
        candidates: dict[str, int] = {}
        keys: set[str] = set()
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
                if earliest_due_ms(produced_ms, self._topic_delay_s.get(at[0], 0)) > now_ms:
                    stopped.add(at)  # nothing behind it is due yet
                continue
            hop = candidates.get(request.delivery_id, request.hop)
            candidates[request.delivery_id] = min(hop, request.hop)
            keys.add(request.key())
            since_ms = min(since_ms, max(produced_ms, request.not_before))
        return candidates, frozenset(keys), since_ms

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
        capped = [(tp, min(end, tp.offset + self._max_records)) for tp, end in ranges]
        yield from read_ranges(reader, capped, self._deadline)
        reader.unassign()
