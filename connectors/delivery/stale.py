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
from collections.abc import Iterable
from dataclasses import dataclass

from hookstream.records import DeliveryRequest

MAX_REMEMBERED = 200_000  # delivery ids whose latest hop is kept


class _Exclusive:
    """`async with`: the delivery's turn, taken once no record of it is in flight."""

    __slots__ = ("_busy", "_delivery_id")

    def __init__(self, busy: dict[str, list[asyncio.Future[None]]], delivery_id: str):
        self._busy, self._delivery_id = busy, delivery_id

    async def __aenter__(self) -> None:
        while (waiting := self._busy.get(self._delivery_id)) is not None:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiting.append(turn)
            await turn
        self._busy[self._delivery_id] = []

    async def __aexit__(self, *exc: object) -> None:
        for turn in self._busy.pop(self._delivery_id):
            if not turn.done():  # every waiter looks again; the first to run takes it
                turn.set_result(None)


@dataclass(frozen=True, slots=True)
class Claim:
    """A record taken as the one handling its delivery's hop."""

    delivery_id: str
    previous_hop: float  # the highest hop handled before it (-1: none known)


class StaleFilter:
    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._max = max_remembered
        self._handled: OrderedDict[str, float] = OrderedDict()
        # delivery id -> those waiting for its record in flight (a list made per delivery,
        # a future only for a copy that waits: the uncontended case allocates little)
        self._busy: dict[str, list[asyncio.Future[None]]] = {}

    def __len__(self) -> int:
        return len(self._handled)

    def exclusive(self, delivery_id: str) -> _Exclusive:
        """One record of a delivery at a time: a copy waits for the outcome of the record
        in flight, which may make it stale (`async with`)."""
        return _Exclusive(self._busy, delivery_id)

    def claim(self, request: DeliveryRequest) -> Claim | None:
        """None for a stale copy (a hop already handled); else this hop is remembered as
        handled, and the claim can undo that (`unclaim`)."""
        previous = self._handled.get(request.delivery_id, -1.0)
        if request.hop <= previous:
            return None
        self._remember(request.delivery_id, float(request.hop))
        return Claim(request.delivery_id, previous)

    def unclaim(self, claim: Claim) -> None:
        """Undo a claim whose record was given up before it was handled."""
        if claim.previous_hop < 0:
            self._handled.pop(claim.delivery_id, None)
        else:
            self._remember(claim.delivery_id, claim.previous_hop)

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
