"""Which input records are copies of an event already planned: the processor's memory of
recent event ids, one per input partition. Pure: no Kafka, no clock.

GLPI resends a webhook it got no answer for; with several ingest replicas the resend may
reach one that never saw the first copy, and the same event (same event id: a hash of
instance, itemtype, GLPI's timestamp and the body) is on glpi.item-changes twice. The
poller may repeat a page after a crash, with the same ids too. Every copy of one item's
events is on one partition (the key is `instance:itemtype:items_id`), so a memory per
partition sees them all, in offset order.

The rule depends on the partition's records alone, so every process decides alike: the
one that planned the first copy, its restarted self, the new owner after a rebalance.
A record is a copy, and skipped, when

    the latest earlier record of its partition with the same event id has a timestamp
    of at least W - window, where W is the largest timestamp in the partition up to and
    including the record (record timestamps: the producer's clock at produce time),

and that earlier record is at most `capacity` records back (guaranteed; further back it
may be remembered or not, and a copy not recognised is planned again with the same
delivery ids, which receivers can still tell). The memory holds each event id with the
timestamp of its latest copy, in the order of those latest copies, at most `capacity` of
them (the least recently seen go first) and none older than W - window.

Rebuilt (`Span`): for a partition whose next record is at offset F with timestamp t, the
records from the first one timestamped t - window or later (Kafka's offsets_for_times),
but at most `capacity` records back, up to F. Every record before that has a timestamp
below t - window <= W - window: it cannot make a later record a copy.

A batch is one Kafka transaction: its records are checked against the memory and the
batch's own earlier records (`pending`), and remembered only once it commits, so a batch
aborted and read again is not taken for copies of itself. The processor checks the next
batch while a batch's commit is under way: the latter is `staged` (`stage`), the next
batch's records are checked against the memory, the staged batch and their own, and the
staged batch is remembered when its commit succeeds (`commit_staged`) or dropped with
the next one when it fails (`begin`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Copy:
    """One record of an event: its id and its Kafka timestamp (None if it has none)."""

    event_id: str
    timestamp_ms: int | None


@dataclass(frozen=True, slots=True)
class Span:
    """The records a partition's memory is rebuilt from: offsets from the first record
    timestamped `since_ms` or later (None: no time bound), but not before `from_offset`,
    up to `until_offset` (excluded)."""

    partition: int
    since_ms: int | None
    from_offset: int
    until_offset: int


class PartitionMemory:
    """One partition's recent event ids, valid for the records before `next_offset`."""

    def __init__(self, window_ms: int, capacity: int, next_offset: int):
        self.window_ms, self.capacity, self.next_offset = window_ms, capacity, next_offset
        self.watermark_ms: int | None = None  # the largest timestamp remembered
        self.forgotten = 0  # ids dropped by the capacity before their window ended
        self._latest: OrderedDict[str, int | None] = OrderedDict()  # id -> latest copy's ts
        self._pending: dict[str, int | None] = {}  # the open batch's, by latest copy
        self._pending_watermark_ms: int | None = None
        self._staged: dict[str, int | None] = {}  # the batch whose commit is under way
        self._staged_watermark_ms: int | None = None
        self.staged_next_offset: int | None = None  # the offset after it, if it holds any

    @property
    def expected_offset(self) -> int:
        """Where the next batch starts if the staged one commits."""
        return self.next_offset if self.staged_next_offset is None else self.staged_next_offset

    def __len__(self) -> int:
        return len(self._latest)

    def is_copy(self, copy: Copy) -> bool:
        """Whether the next record (after the batch's earlier ones) is a copy; it is
        pending either way, remembered when the batch commits."""
        if copy.event_id in self._pending:
            seen, previous_ms = True, self._pending.pop(copy.event_id)
        elif copy.event_id in self._staged:
            seen, previous_ms = True, self._staged[copy.event_id]
        else:
            seen, previous_ms = copy.event_id in self._latest, self._latest.get(copy.event_id)
        self._pending[copy.event_id] = copy.timestamp_ms
        self._pending_watermark_ms = _max(self._pending_watermark_ms, copy.timestamp_ms)
        if not seen:  # the usual case: no watermark needed
            return False
        # the pending watermark now holds this copy's timestamp too
        watermark = _max(_max(self.watermark_ms, self._staged_watermark_ms),
                         self._pending_watermark_ms)
        return _recent(previous_ms, watermark, self.window_ms)

    def stage(self, next_offset: int | None) -> None:
        """The open batch's commit starts (`next_offset`: the partition's offset after it,
        None when it holds none of the partition's records); the next batch is open."""
        self._staged, self._pending = self._pending, {}
        self._staged_watermark_ms, self._pending_watermark_ms = self._pending_watermark_ms, None
        self.staged_next_offset = next_offset

    def commit_staged(self) -> None:
        """The staged batch committed: its records are remembered."""
        for event_id, timestamp_ms in self._staged.items():
            self.remember(Copy(event_id, timestamp_ms))
        if self.staged_next_offset is not None:
            self.next_offset = self.staged_next_offset
        self._drop_staged()

    def discard(self) -> None:
        """The open and the staged batch did not commit: they will be read again."""
        self._pending.clear()
        self._pending_watermark_ms = None
        self._drop_staged()

    def _drop_staged(self) -> None:
        self._staged = {}
        self._staged_watermark_ms = self.staged_next_offset = None

    def remember(self, copy: Copy) -> None:
        self.watermark_ms = _max(self.watermark_ms, copy.timestamp_ms)
        self._latest.pop(copy.event_id, None)
        self._latest[copy.event_id] = copy.timestamp_ms
        if len(self._latest) > self.capacity:
            _, dropped_ms = self._latest.popitem(last=False)
            if _recent(dropped_ms, self.watermark_ms, self.window_ms):
                self.forgotten += 1
        self._forget_old()

    def _forget_old(self) -> None:
        """Drop, from the least recently seen, the ids whose latest copy is out of the
        window (ids behind a more recent one wait for it: `is_copy` checks each time)."""
        while self._latest:
            oldest_ms = next(iter(self._latest.values()))
            if _recent(oldest_ms, self.watermark_ms, self.window_ms):
                return
            self._latest.popitem(last=False)


class RecentEvents:
    """The memories of the partitions this process reads, by partition number."""

    def __init__(self, window_ms: int, capacity: int):
        self.window_ms, self.capacity = window_ms, capacity
        self._memories: dict[int, PartitionMemory] = {}
        self.forgotten = 0  # of memories dropped since (kept so the total never goes down)

    def span(self, partition: int, offset: int, timestamp_ms: int | None) -> Span | None:
        """What to read back before the record at `offset` (timestamped `timestamp_ms`),
        the first of a batch, can be checked; None when this process's memory already ends
        there."""
        memory = self._memories.get(partition)
        if memory is not None and memory.expected_offset == offset:
            return None
        since_ms = None if timestamp_ms is None else timestamp_ms - self.window_ms
        return Span(partition, since_ms, max(0, offset - self.capacity), offset)

    def rebuild(self, span: Span, copies: Iterable[Copy]) -> None:
        """The partition's memory from the records of `span`, in offset order."""
        self._drop(span.partition)
        memory = PartitionMemory(self.window_ms, self.capacity, span.until_offset)
        for copy in copies:
            memory.remember(copy)
        memory.forgotten = 0  # what the rebuild dropped was not this process's to count
        self._memories[span.partition] = memory

    def is_copy(self, partition: int, copy: Copy) -> bool:
        """Whether the partition's next record is a copy (see the module); the partition's
        memory must be built (`span`, `rebuild`) before its first record is checked."""
        return self._memories[partition].is_copy(copy)

    def begin(self) -> None:
        """A new batch, none staged: whatever earlier ones left did not commit."""
        for memory in self._memories.values():
            memory.discard()

    def stage(self, next_offsets: dict[int, int]) -> None:
        """The open batch's commit starts; `next_offsets` are its partitions' offsets after
        it. The next batch may be checked meanwhile (`is_copy`), and this one is
        remembered by `commit_staged` once its commit succeeds."""
        for partition, memory in self._memories.items():
            memory.stage(next_offsets.get(partition))

    def commit_staged(self) -> None:
        """The staged batch committed (the open one, if any, stays open)."""
        for memory in self._memories.values():
            memory.commit_staged()

    def commit(self, next_offsets: dict[int, int]) -> None:
        """The open batch committed; `next_offsets` are its partitions' offsets after it."""
        self.stage(next_offsets)
        self.commit_staged()

    def keep_only(self, partitions: Iterable[int]) -> None:
        """Drop the memories of partitions this process no longer reads."""
        for partition in set(self._memories) - set(partitions):
            self._drop(partition)

    def _drop(self, partition: int) -> None:
        memory = self._memories.pop(partition, None)
        if memory is not None:
            self.forgotten += memory.forgotten

    @property
    def total_forgotten(self) -> int:
        return self.forgotten + sum(m.forgotten for m in self._memories.values())

    def held(self) -> dict[int, int]:
        """Event ids held, by partition."""
        return {p: len(m) for p, m in self._memories.items()}


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _recent(timestamp_ms: int | None, watermark_ms: int | None, window_ms: int) -> bool:
    """Whether a copy timestamped `timestamp_ms` is inside the window that ends at the
    watermark; a copy without a timestamp (or no watermark yet) counts as recent."""
    if timestamp_ms is None or watermark_ms is None:
        return True
    return timestamp_ms >= watermark_ms - window_ms


__all__ = ["Copy", "PartitionMemory", "RecentEvents", "Span"]
