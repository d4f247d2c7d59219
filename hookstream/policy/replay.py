"""The ingest endpoint's memory of accepted requests: bounded in entries and in time.

GLPI resends a queued row with the same body and timestamp after a lost answer, so a
request identical to one already accepted must be answered 2xx without producing again.
Entries live `ttl_s` (the timestamp tolerance: an older copy is refused by its
timestamp anyway) and at most `capacity` of them are kept, oldest dropped first. All
entries share one lifetime, so insertion order is expiry order and a deque suffices.
Time is an argument.
"""

from __future__ import annotations

from collections import deque


class AcceptedRequests:
    """Dedup keys of requests Kafka acknowledged, per process."""

    def __init__(self, capacity: int, ttl_s: float):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._keys: set[bytes] = set()
        self._order: deque[tuple[float, bytes]] = deque()
        self.evicted_early = 0  # dropped for room before their time: a metric

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def seen(self, key: bytes, now_s: float) -> bool:
        """Whether `key` was accepted within the last ttl_s."""
        self._expire(now_s)
        return key in self._keys

    def add(self, key: bytes, now_s: float) -> None:
        self._expire(now_s)
        if key in self._keys:
            return
        while len(self._keys) >= self.capacity:
            _, old = self._order.popleft()
            self._keys.discard(old)
            self.evicted_early += 1
        self._keys.add(key)
        self._order.append((now_s + self.ttl_s, key))

    def _expire(self, now_s: float) -> None:
        order, keys = self._order, self._keys
        while order and order[0][0] <= now_s:
            keys.discard(order.popleft()[1])
