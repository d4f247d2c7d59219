"""Limits on sending: global, per origin (adaptive), per webhook, and the webhook's rate.

    webhook's max_in_flight  ─▶  webhook's rate (one 1/rate time slot per send)
        ─▶  origin's adaptive limit (FIFO, hookstream.policy.AdaptiveLimit)  ─▶  global

An origin's deliveries wait in memory, in the order they were read, for a slot of the
origin. Their number is bounded: once an origin holds `max_queued_per_origin`, the
loop pauses the partitions that feed it (`saturated`), and resumes them once the origin
is down to half of that (`on_relieved`). So a slow receiver is paced by its own answers,
not failed with `deferred` records.

State is kept only while used: an origin or webhook with nothing in flight, nothing
waiting and no rate slot ahead is forgotten (a fresh origin starts probing again).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from connectors.delivery.http.sender import Target
from hookstream.policy import AdaptiveLimit


@dataclass(slots=True)
class _Origin:
    limit: AdaptiveLimit
    held: int = 0  # dispatched deliveries not finished (waiting or in flight)
    in_flight: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    saturated: bool = False


@dataclass(slots=True)
class _Webhook:
    slots: asyncio.Semaphore | None
    next_slot_s: float = 0.0
    users: int = 0


class Limits:
    def __init__(self, max_in_flight: int, max_per_origin: int, max_queued_per_origin: int,
                 on_relieved: Callable[[str], None] = lambda origin: None,
                 clock: Callable[[], float] = time.monotonic):
        self._global = asyncio.Semaphore(max_in_flight)
        self._max_per_origin = max_per_origin
        self._max_queued = max_queued_per_origin
        self._on_relieved = on_relieved
        self._clock = clock
        self._origins: dict[str, _Origin] = {}
        self._webhooks: dict[tuple[str, int], _Webhook] = {}  # (webhook id, max_in_flight)

    # -- holding ---------------------------------------------------------------------------

    def hold(self, origin: str) -> bool:
        """A delivery for `origin` is dispatched; True once the origin is saturated."""
        state = self._origins.get(origin)
        if state is None:
            state = self._origins[origin] = _Origin(AdaptiveLimit(self._max_per_origin))
        state.held += 1
        if state.held >= self._max_queued:
            state.saturated = True
        return state.saturated

    def release(self, origin: str) -> None:
        """The delivery dispatched with `hold` is finished."""
        state = self._origins[origin]
        state.held -= 1
        if state.saturated and state.held <= self._max_queued // 2:
            state.saturated = False
            self._on_relieved(origin)
        self._forget_origin(origin, state)

    def held(self, origin: str) -> int:
        state = self._origins.get(origin)
        return 0 if state is None else state.held

    def allowed(self, origin: str) -> int:
        """The origin's current adaptive in-flight limit (for metrics and tests)."""
        state = self._origins.get(origin)
        return 0 if state is None else state.limit.allowed

    def tracked(self) -> tuple[int, int]:
        """(origins, webhooks) with state: bounded by what is in use."""
        return len(self._origins), len(self._webhooks)

    # -- sending ---------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, origin: str, target: Target) -> AsyncIterator[None]:
        """Wait for every limit, in order; inside the block the request may go."""
        key = (target.webhook_id, target.max_in_flight)  # a new bound, a new semaphore
        hook = self._webhooks.get(key)
        if hook is None:
            slots = asyncio.Semaphore(target.max_in_flight) if target.max_in_flight > 0 else None
            hook = self._webhooks[key] = _Webhook(slots)
        hook.users += 1
        try:
            if hook.slots is not None:
                async with hook.slots:
                    await self._pace(hook, target.rate_limit_per_s)
                    async with self._origin_slot(origin), self._global:
                        yield
            else:
                await self._pace(hook, target.rate_limit_per_s)
                async with self._origin_slot(origin), self._global:
                    yield
        finally:
            hook.users -= 1
            if hook.users == 0 and hook.next_slot_s <= self._clock():
                self._webhooks.pop(key, None)

    def sample(self, origin: str, latency_s: float, failed: bool, in_flight: int) -> None:
        """Feed a finished request's latency and verdict to the origin's adaptive limit."""
        state = self._origins.get(origin)
        if state is not None:
            state.limit.sample(latency_s, failed, in_flight, self._clock())
            self._wake(state)

    def in_flight(self, origin: str) -> int:
        state = self._origins.get(origin)
        return 0 if state is None else state.in_flight

    async def _pace(self, hook: _Webhook, rate_per_s: float) -> None:
        """The webhook's rate limit: each send takes the next 1/rate time slot."""
        if rate_per_s <= 0:
            return
        now = self._clock()
        slot = max(now, hook.next_slot_s)
        hook.next_slot_s = slot + 1 / rate_per_s
        if slot > now:
            await asyncio.sleep(slot - now)

    @asynccontextmanager
    async def _origin_slot(self, origin: str) -> AsyncIterator[None]:
        state = self._origins.get(origin)
        if state is None:  # sent without `hold` (force send, tests)
            state = self._origins[origin] = _Origin(AdaptiveLimit(self._max_per_origin))
        if state.in_flight < state.limit.allowed and not state.waiters:
            state.in_flight += 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            state.waiters.append(waiter)
            try:
                await waiter  # `_wake` counts it in flight before waking it
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    state.in_flight -= 1
                    self._wake(state)
                else:
                    state.waiters.remove(waiter)
                raise
        try:
            yield
        finally:
            state.in_flight -= 1
            self._wake(state)
            self._forget_origin(origin, state)

    @staticmethod
    def _wake(state: _Origin) -> None:
        while state.waiters and state.in_flight < state.limit.allowed:
            waiter = state.waiters.popleft()
            if not waiter.done():
                state.in_flight += 1
                waiter.set_result(None)

    def _forget_origin(self, origin: str, state: _Origin) -> None:
        if state.held <= 0 and state.in_flight == 0 and not state.waiters:
            self._origins.pop(origin, None)
