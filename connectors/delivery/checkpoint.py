"""Offsets and partition ownership: what may be committed, which partitions are paused and
why, and one generation per partition that a revoke ends.

An offset is stored only once every record of its outcome has been acknowledged by Kafka
(STYLE.md 9), and only up to the lowest record whose outcome is not durable yet
(OffsetTracker), so a crash repeats deliveries (same delivery id) and never loses one.

A partition is paused for reasons: the next records of a retry tier are not due yet
(`DUE`, schedule), or an origin it feeds is saturated (worker). It is fetched again from
where it was paused once no reason is left (records fetched meanwhile were dropped).

A revoke stores the offsets already durable, then forgets the partition and ends its
generation: work begun under it (a held retry, a delivery waiting for a slot) is given
up, and the partition's new owner reads those records again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from connectors.delivery.ports import TP, RecordSource
from hookstream.io import Partitions

DUE = "due"  # the pause reason of a tier partition whose next records are not due yet


class OffsetTracker:
    """Offsets of one partition in the order they were read; `done` marks an outcome
    durable and returns the offset to commit (one past the last contiguous done record)."""

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()

    def add(self, offset: int) -> None:
        self._pending.append(offset)

    def done(self, offset: int) -> int | None:
        self._done.add(offset)
        committable = None
        while self._pending and self._pending[0] in self._done:
            head = self._pending.popleft()
            self._done.discard(head)
            committable = head + 1
        return committable

    def unread(self, offset: int) -> None:
        """The last record read, at `offset`, is given back unhandled (it is read again
        later): forgotten, so nothing is committed past it until it is read again."""
        if self._pending and self._pending[-1] == offset:
            self._pending.pop()

    def __len__(self) -> int:
        return len(self._pending)


class Checkpoint:
    def __init__(self, consumer: RecordSource, clock: Callable[[], float]) -> None:
        self._partitions = Partitions(consumer)
        self._clock = clock
        self._trackers: dict[TP, OffsetTracker] = {}
        self._committable: dict[TP, int] = {}  # stored by store_offsets, once per iteration
        self._next: dict[TP, int] = {}  # one past the last offset read
        self._generation: dict[TP, int] = {}  # bumped when the partition is revoked
        self._paused: dict[TP, set[str]] = {}  # partition -> the reasons it is paused for
        self._positions: dict[TP, int] = {}  # where a paused partition is read again from
        self._timers: dict[TP, asyncio.TimerHandle] = {}
        # Told each record whose outcome is durable (ordering: the next of its item goes).
        self.finished: Callable[[TP, int], None] | None = None

    # -- reading and ownership ------------------------------------------------------------

    def read(self, tp: TP, offset: int) -> int:
        """The record at `offset` was read: its offset waits for its outcome. Returns the
        generation it was read under (see `owns`)."""
        tracker = self._trackers.get(tp)
        if tracker is None:
            tracker = self._trackers[tp] = OffsetTracker()
        tracker.add(offset)
        self._next[tp] = offset + 1
        return self._generation.get(tp, 0)

    def owns(self, tp: TP, generation: int) -> bool:
        """Whether `tp` is still owned as it was when a record of `generation` was read."""
        return self._generation.get(tp, 0) == generation

    def done(self, tp: TP, offset: int) -> None:
        """The outcome of the record at `offset` is durable (or it needed none)."""
        tracker = self._trackers.get(tp)
        if tracker is None:
            return  # revoked: the new owner repeats it (same delivery id)
        committable = tracker.done(offset)
        if committable is not None:
            self._committable[tp] = committable
        if self.finished is not None:
            self.finished(tp, offset)

    def unread(self, tp: TP, offset: int) -> None:
        """The record at `offset`, the last read of `tp`, is given back unhandled, to be read
        again from a pause at `offset`: never committed past meanwhile (`done` would be)."""
        tracker = self._trackers.get(tp)
        if tracker is not None:
            tracker.unread(offset)

    def store_offsets(self) -> None:
        """Store, in one call, the committable offset of every partition that advanced."""
        if self._committable:
            ready, self._committable = self._committable, {}
            self._partitions.store_offsets(
                {tp: offset for tp, offset in ready.items() if tp in self._trackers})

    def commit(self) -> None:
        """Commit what is stored now (KafkaFailed if the broker does not take it)."""
        self._partitions.commit()

    def assign(self, assigned: Iterable[TP]) -> None:
        """Resume what is assigned: librdkafka keeps a partition paused through an eager
        rebalance that gives it back to this consumer, but its reasons were forgotten on
        revoke, so nothing would ever lift it."""
        for tp in assigned:
            self._partitions.resume(tp)

    def revoke(self, revoked: Iterable[TP]) -> None:
        """Offsets already durable but not stored yet are stored before the partitions go,
        so the new owner does not repeat those deliveries; then they are forgotten."""
        revoked = list(revoked)
        self._partitions.store_offsets(
            {tp: self._committable.pop(tp) for tp in revoked if tp in self._committable})
        for tp in revoked:
            self._generation[tp] = self._generation.get(tp, 0) + 1
            self._trackers.pop(tp, None)
            self._next.pop(tp, None)
            self._paused.pop(tp, None)
            self._positions.pop(tp, None)
            timer = self._timers.pop(tp, None)
            if timer is not None:
                timer.cancel()

    # -- pauses ---------------------------------------------------------------------------

    def is_paused(self, tp: TP) -> bool:
        return tp in self._paused

    def paused(self, reason: str | None = None) -> list[TP]:
        """Paused partitions (for `reason` only, if given)."""
        return [tp for tp, why in self._paused.items() if reason is None or reason in why]

    def pause(self, tp: TP, reason: str, from_offset: int | None = None,
              resume_at_ms: int | None = None) -> None:
        """Stop fetching `tp` from `from_offset` on (by default, after the last record read)
        until `reason` is lifted, by `lift` or at `resume_at_ms`."""
        reasons = self._paused.get(tp)
        if reasons is None:
            position = self._next.get(tp) if from_offset is None else from_offset
            if position is None or not self._partitions.pause(tp):
                return  # revoked meanwhile
            # Recorded even if the seek fails (a broker away): a partition paused in the
            # client must be resumed, and `lift` seeks again before resuming.
            reasons = self._paused[tp] = set()
            self._positions[tp] = position
            self._partitions.seek(tp, position)
        reasons.add(reason)
        if resume_at_ms is not None:
            delay_s = max(0.0, resume_at_ms / 1000 - self._clock())
            self._timers[tp] = asyncio.get_running_loop().call_later(
                delay_s, self.lift, tp, reason)

    def lift(self, tp: TP, reason: str) -> None:
        """Lift one reason; the partition is fetched again once none is left."""
        reasons = self._paused.get(tp)
        if reasons is None or reason not in reasons:
            return
        reasons.discard(reason)
        if reasons:
            return
        del self._paused[tp]
        timer = self._timers.pop(tp, None)
        if timer is not None:
            timer.cancel()
        # Records fetched while paused were dropped: read them again.
        self._partitions.seek(tp, self._positions.pop(tp))
        self._partitions.resume(tp)
