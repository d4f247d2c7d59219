"""Which offset may be committed: the lowest record whose outcome is not yet durable."""

from __future__ import annotations

from collections import deque


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

    def __len__(self) -> int:
        return len(self._pending)
