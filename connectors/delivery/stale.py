"""The stale-copy filter: a delivery is handled through one record at a time, and a
record superseded by a copy already handled is dropped.

Every record forwarded for a delivery (retry tier, circuit skip, DLQ) carries the hop of
the record it came from plus one. After a crash, the record that was being handled is
read again next to the copy it had already forwarded; sending both would deliver twice.
Copies share a key, hence a partition number, and the range assignor gives partition p of
every input topic to one consumer, so the copies meet here: the filter remembers, per
delivery id, the highest hop handled (infinity once delivered or dead-lettered).

`seed` takes what was read back from Kafka when partitions are assigned (see
recall), so the filter's memory survives restarts.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from hookstream.records import DeliveryRequest

MAX_REMEMBERED = 200_000  # delivery ids whose latest hop is kept


class StaleFilter:
    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._max = max_remembered
        self._handled: OrderedDict[str, float] = OrderedDict()
        self._busy: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._handled)

    @asynccontextmanager
    async def exclusive(self, delivery_id: str) -> AsyncIterator[None]:
        """One record of a delivery at a time: a copy waits for the outcome of the record
        in flight, which may make it stale."""
        while (busy := self._busy.get(delivery_id)) is not None:
            await busy.wait()
        done = self._busy[delivery_id] = asyncio.Event()
        try:
            yield
        finally:
            del self._busy[delivery_id]
            done.set()

    def admit(self, request: DeliveryRequest) -> bool:
        """False for a stale copy (a hop already handled); else remember this hop."""
        if request.hop <= self._handled.get(request.delivery_id, -1.0):
            return False
        self._remember(request.delivery_id, float(request.hop))
        return True

    def handled(self, delivery_id: str) -> float:
        """The highest hop handled (-1 for none known)."""
        return self._handled.get(delivery_id, -1.0)

    def restore(self, delivery_id: str, hop: float) -> None:
        """Undo an `admit` whose record was given up before it was handled."""
        if hop < 0:
            self._handled.pop(delivery_id, None)
        else:
            self._remember(delivery_id, hop)

    def finished(self, delivery_id: str) -> None:
        """The delivery needs nothing more (delivered or dead-lettered): every copy is stale."""
        self._remember(delivery_id, math.inf)

    def seed(self, hops: Iterable[tuple[str, float]]) -> None:
        """Hops known to be handled (read back from Kafka), kept where higher."""
        for delivery_id, hop in hops:
            if hop > self._handled.get(delivery_id, -1.0):
                self._remember(delivery_id, hop)

    def _remember(self, delivery_id: str, hop: float) -> None:
        self._handled[delivery_id] = hop
        self._handled.move_to_end(delivery_id)
        if len(self._handled) > self._max:
            self._handled.popitem(last=False)
