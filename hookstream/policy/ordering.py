"""Ordered delivery per item: which delivery of an item may go now. Pure: no timers, no Kafka.

Of the deliveries of one key (`webhook_id:itemtype:items_id`, so one item of one webhook)
read from one partition, only the head, the earliest not finished, is attempted; the
others wait, in the order they were read, until it is finished (delivered or
dead-lettered), then the next becomes the head:

    admit(key, offset, item)  True: it is the head of its key, it goes now
                              False: it waits behind the head of its key
    finish(offset)            the head at `offset` is finished: the next of its key,
                              now the head (it goes), or None
    is_head(offset)           the head is attempted again in place (a retry): it may go

One `ItemQueues` per partition: a key's deliveries are all on one partition, in event order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

NONE = "none"
PER_ITEM = "per_item"
ORDERINGS = (NONE, PER_ITEM)


@dataclass(frozen=True, slots=True)
class Waiting(Generic[T]):
    """A delivery read at `offset` that waits behind the head of its key."""

    offset: int
    item: T


@dataclass(slots=True)
class _Key(Generic[T]):
    head: int
    waiting: deque[Waiting[T]] = field(default_factory=deque)


class ItemQueues(Generic[T]):
    """The heads and waiting deliveries of one partition."""

    def __init__(self) -> None:
        self._keys: dict[str, _Key[T]] = {}
        self._head_keys: dict[int, str] = {}  # head offset -> its key

    def admit(self, key: str, offset: int, item: T) -> bool:
        """True if the delivery at `offset` is the head of `key` (it goes now); else it
        waits behind the head, after the ones already waiting."""
        state = self._keys.get(key)
        if state is None:
            self._keys[key] = _Key(offset)
            self._head_keys[offset] = key
            return True
        state.waiting.append(Waiting(offset, item))
        return False

    def is_head(self, offset: int) -> bool:
        return offset in self._head_keys

    def finish(self, offset: int) -> Waiting[T] | None:
        """The head at `offset` is finished: the next delivery of its key, now its head;
        None if `offset` is no head or nothing of its key waits (the key is forgotten)."""
        key = self._head_keys.pop(offset, None)
        if key is None:
            return None
        state = self._keys[key]
        if not state.waiting:
            del self._keys[key]
            return None
        nxt = state.waiting.popleft()
        state.head = nxt.offset
        self._head_keys[nxt.offset] = key
        return nxt

    def waiting(self) -> Iterator[Waiting[T]]:
        """Every waiting delivery (for what a revoke gives up)."""
        for state in self._keys.values():
            yield from state.waiting

    def __len__(self) -> int:
        """Keys with a head."""
        return len(self._keys)


@dataclass(frozen=True, slots=True)
class HeldBound:
    """How much the ordering may hold in memory (waiting deliveries and heads waiting for
    their retry): past either bound the partition adding to it is paused; below half of
    both, the paused partitions are resumed."""

    max_records: int
    max_bytes: int

    def over(self, records: int, size_bytes: int) -> bool:
        return records >= self.max_records or size_bytes >= self.max_bytes

    def relieved(self, records: int, size_bytes: int) -> bool:
        return records <= self.max_records // 2 and size_bytes <= self.max_bytes // 2
