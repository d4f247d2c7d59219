"""Limits on sending: global, per origin (adaptive), per webhook, and the webhook's rate.

    webhook's max_in_flight  ─▶  webhook's rate (one 1/rate time slot per send)
        ─▶  origin's adaptive limit (FIFO, hookstream.policy.AdaptiveLimit)  ─▶  global

An origin's deliveries wait in memory, in the order they were read, for a slot of the
origin. Their number is bounded: once an origin holds `max_queued_per_origin`, the
worker pauses the partitions that feed it (`hold` says so), and resumes them once the
origin is down to half of that (`release` says so). So a slow receiver is paced by its
own answers, not failed with `deferred` records.

State is kept only while used: an origin or webhook with nothing in flight, nothing
waiting and no rate slot ahead is forgotten (a fresh origin starts probing again).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.delivery.http.targets import Target
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
                 clock: Callable[[], float] = time.monotonic):
        self._global = asyncio.Semaphore(max_in_flight)
        self._max_per_origin = max_per_origin
        self._max_queued = max_queued_per_origin
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

    def release(self, origin: str) -> bool:
        """The delivery dispatched with `hold` is finished; True once a saturated origin is
        relieved (what feeds it may be read again)."""
        state = self._origins[origin]
        state.held -= 1
        relieved = state.saturated and state.held <= self._max_queued // 2
        if relieved:
            state.saturated = False
        self._forget_origin(origin, state)
        return relieved

    def tracked(self) -> tuple[int, int]:
        """(origins, webhooks) with state: bounded by what is in use."""
        return len(self._origins), len(self._webhooks)

    # -- sending ---------------------------------------------------------------------------

    def slot(self, origin: str, target: Target) -> _Slot:
        """Wait for every limit, in order; inside the block (`async with`) the request may
        go."""
        return _Slot(self, origin, target)

    def sample(self, origin: str, latency_s: float, failed: bool) -> None:
        """Feed a request's latency and verdict, while it still holds its slot, to the
        origin's adaptive limit."""
        state = self._origins.get(origin)
        if state is not None:
            state.limit.sample(latency_s, failed, state.in_flight, self._clock())
            self._wake(state)

    async def _pace(self, hook: _Webhook, rate_per_s: float) -> None:
        """The webhook's rate limit (> 0): each send takes the next 1/rate time slot."""
        now = self._clock()
        slot = max(now, hook.next_slot_s)
        hook.next_slot_s = slot + 1 / rate_per_s
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _enter_origin(self, origin: str) -> _Origin:
        """A place among the origin's requests in flight, in FIFO order."""
        state = self._origins.get(origin)
        if state is None:  # sent without `hold` (force send, tests)
            state = self._origins[origin] = _Origin(AdaptiveLimit(self._max_per_origin))
        if state.in_flight < state.limit.allowed and not state.waiters:
            state.in_flight += 1
            return state
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        try:
            await waiter  # `_wake` counts it in flight before waking it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._leave_origin(origin, state)
            else:
                state.waiters.remove(waiter)
            raise
        return state

    def _leave_origin(self, origin: str, state: _Origin) -> None:
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


class _Slot:
    """`Limits.slot`: the webhook's bound and rate, the origin's place, the global bound,
    taken in that order and given back in the reverse one. A class rather than a generator
    context manager: it is entered once per attempt."""

    __slots__ = (
        "_bounded",
        "_global",
        "_hook",
        "_key",
        "_limits",
        "_origin",
        "_state",
        "_target",
    )

    def __init__(self, limits: Limits, origin: str, target: Target):
        self._limits, self._origin, self._target = limits, origin, target
        self._key = (target.webhook_id, target.max_in_flight)  # a new bound, a new semaphore
        self._hook: _Webhook | None = None
        self._bounded = False  # holds one of the webhook's max_in_flight
        self._state: _Origin | None = None  # holds a place of the origin
        self._global = False  # holds one of the global bound

    async def __aenter__(self) -> None:
        limits, target = self._limits, self._target
        hook = limits._webhooks.get(self._key)
        if hook is None:
            slots = asyncio.Semaphore(target.max_in_flight) if target.max_in_flight > 0 else None
            hook = limits._webhooks[self._key] = _Webhook(slots)
        hook.users += 1
        self._hook = hook
        try:
            if hook.slots is not None:
                await hook.slots.acquire()
                self._bounded = True
            if target.rate_limit_per_s > 0:
                await limits._pace(hook, target.rate_limit_per_s)
            self._state = await limits._enter_origin(self._origin)
            await limits._global.acquire()
            self._global = True
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._leave()

    def _leave(self) -> None:
        limits, hook = self._limits, self._hook
        assert hook is not None, "entered"
        if self._global:
            limits._global.release()
        if self._state is not None:
            limits._leave_origin(self._origin, self._state)
        if self._bounded and hook.slots is not None:
            hook.slots.release()
        hook.users -= 1
        if hook.users == 0 and hook.next_slot_s <= limits._clock():
            limits._webhooks.pop(self._key, None)
