"""Ordered delivery per item (`ordering: per_item`): the gate in front of the attempts.

For a webhook with the option, a delivery read from hookstream.deliveries goes only when
it is the head of its key (hookstream.policy.ordering); later ones of the key wait in
memory, their offsets not done, so a crash or a rebalance reads them again, in the same
order. A head that fails is retried in place: kept here on a timer with the delay
decide() chose (schedule, jitter, Retry-After, a circuit-open or CRA wait without an
attempt spent), never forwarded to a retry tier, so nothing behind it can overtake it and
no copy exists elsewhere (the copy keeps the record's hop: read again after a revoke, the
record is not taken for one superseded by its own retry); its attempt records are
produced as usual. Once the head's outcome is durable (delivered, dead-lettered, or
dropped as a stale copy), the next waiting delivery of its key goes. Other keys, webhooks
and partitions are never held.

    submit(job)                       between the schedule and the worker: the job goes
                                      to the worker now, or waits behind its item's head
    keeps(job, topic, copy, owned)    the records ask instead of forwarding a retry: kept
                                      in place (or given up, if revoked)?
    finished(tp, offset)              an outcome is durable (checkpoint): the next of its
                                      key goes
    revoke(partitions)                everything held for them is dropped

Memory: waiting deliveries and heads waiting for their retry, counted in records and
body bytes; past `ordering_max_held` or `ordering_max_held_bytes` the partition adding to
it is paused (reason ORDERING), and resumed once below half of both. Never dropped.

Not gated: records of these webhooks read from a retry tier (forwarded before the option
was turned on) go as before. A redriven record comes back on hookstream.deliveries and
is gated there, after whatever of its item was read before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from connectors.delivery.checkpoint import Checkpoint
from connectors.delivery.ports import TP, Job
from connectors.delivery.stale import Claim, StaleFilter
from hookstream.io import metrics
from hookstream.policy import HeldBound, ItemQueues
from hookstream.records import DeliveryRequest

ORDERING = "ordering"  # the pause reason of a partition held back by the bound


@dataclass(frozen=True, slots=True)
class _Retry:
    """A head waiting for its retry in place."""

    timer: asyncio.TimerHandle
    delivery_id: str
    size: int


class Ordering:
    def __init__(self, deliveries_topic: str, ordered: Callable[[str], bool],
                 submit: Callable[[Job], None], checkpoint: Checkpoint, stale: StaleFilter,
                 clock: Callable[[], float], bound: HeldBound, count: Callable[[str], None]):
        self._topic = deliveries_topic
        self._ordered = ordered  # webhook id -> ordering: per_item
        self._submit = submit  # the worker's
        self._checkpoint = checkpoint
        self._stale = stale
        self._clock = clock
        self._bound = bound
        self._count = count
        self._queues: dict[TP, ItemQueues[Job]] = {}
        self._retries: dict[TP, dict[int, _Retry]] = {}
        self._paused: set[TP] = set()
        self.held = 0  # records: waiting deliveries and heads waiting for their retry
        self.held_bytes = 0

    def submit(self, job: Job) -> None:
        """To the worker now, or, behind an earlier delivery of its item, later (from
        `finished`)."""
        if not self._waits(job):
            self._submit(job)

    def _waits(self, job: Job) -> bool:
        tp, request = job.tp, job.request
        if tp.topic != self._topic or not self._ordered(request.webhook_id):
            return False
        queues = self._queues.get(tp)
        if queues is None:
            queues = self._queues[tp] = ItemQueues()
        if queues.admit(request.key(), job.offset, job):
            return False
        self._count("ordering_waited")
        self._hold(tp, len(request.body))
        return True

    def keeps(self, job: Job, topic: str, copy: DeliveryRequest, owned: bool) -> bool:
        """Instead of forwarding `copy` (the next try of the record at `offset`) to the
        retry tier `topic`: True if it is kept here, its offset not done. A head is
        retried in place at `copy.not_before`. A record of an ordered webhook whose
        partition was revoked while it was attempted is given up: forwarding it would let
        the new owner send what follows it first; the new owner reads it again instead."""
        tp = job.tp
        queues = self._queues.get(tp)
        if owned and queues is not None and queues.is_head(job.offset):
            self._retry_later(job, topic, copy)
            return True
        if owned or tp.topic != self._topic or not self._ordered(copy.webhook_id):
            return False
        self._stale.unclaim(Claim(copy.delivery_id, -1.0))  # read again, it is attempted again
        self._count("ordering_given_up_on_revoke")
        return True

    def finished(self, tp: TP, offset: int) -> None:
        """The outcome of the record at `offset` is durable: if it was a head, the next
        delivery of its key goes."""
        queues = self._queues.get(tp)
        if queues is None:
            return
        nxt = queues.finish(offset)
        if nxt is None:
            if not queues:
                del self._queues[tp]
            return
        self._release(len(nxt.item.request.body))
        self._submit(nxt.item)

    def revoke(self, partitions: Iterable[TP]) -> None:
        """Everything held for these partitions is dropped: the new owner reads it again,
        in order. A head waiting for its retry may be read again here (a rebalance that
        gives the partition back): the stale filter forgets its hops, so it is attempted
        again, not dropped (at worst an older copy of it, dead-lettered and still above
        the committed offset, is tried once more: a repeat, never a loss)."""
        for tp in partitions:
            self._paused.discard(tp)  # the checkpoint forgets its pauses on revoke
            queues = self._queues.pop(tp, None)
            if queues is not None:
                for waiting in queues.waiting():
                    self.held -= 1
                    self.held_bytes -= len(waiting.item.request.body)
            for retry in self._retries.pop(tp, {}).values():
                retry.timer.cancel()
                self._stale.unclaim(Claim(retry.delivery_id, -1.0))
                self.held -= 1
                self.held_bytes -= retry.size
        self._resume_if_relieved()

    def holds(self, tp: TP) -> int:
        """Keys with a head on `tp` (for tests and gauges)."""
        queues = self._queues.get(tp)
        return 0 if queues is None else len(queues)

    def _retry_later(self, job: Job, topic: str, copy: DeliveryRequest) -> None:
        # The copy keeps the hop of the record: no other copy of it exists, and the stale
        # filter must not take the record, read again after a revoke, for one superseded.
        copy = copy.evolve(hop=copy.hop - 1)
        size = len(copy.body)
        delay_s = max(0.0, copy.not_before / 1000 - self._clock())
        # Sent as a retry read from the tier it would have gone to (its attempt and cause).
        retry = Job(job.tp, job.offset, copy, job.generation, via=topic)
        timer = asyncio.get_running_loop().call_later(delay_s, self._retry_due, retry)
        self._retries.setdefault(job.tp, {})[job.offset] = _Retry(timer, copy.delivery_id, size)
        self._count("retried_in_place")
        self._hold(job.tp, size)

    def _retry_due(self, job: Job) -> None:
        retry = self._retries[job.tp].pop(job.offset)
        self._release(retry.size)
        self._stale.unclaim(Claim(job.request.delivery_id, job.request.hop - 1))  # admitted again
        self._submit(job)

    def _hold(self, tp: TP, size: int) -> None:
        self.held += 1
        self.held_bytes += size
        metrics.ORDERING_HELD.set(self.held)
        if self._bound.over(self.held, self.held_bytes) and tp not in self._paused:
            self._paused.add(tp)
            self._checkpoint.pause(tp, ORDERING)

    def _release(self, size: int) -> None:
        self.held -= 1
        self.held_bytes -= size
        self._resume_if_relieved()

    def _resume_if_relieved(self) -> None:
        metrics.ORDERING_HELD.set(self.held)
        if self._paused and self._bound.relieved(self.held, self.held_bytes):
            paused, self._paused = self._paused, set()
            for tp in paused:
                self._checkpoint.lift(tp, ORDERING)
