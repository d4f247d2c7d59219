"""One delivery, read in one direction, as arq's `run_job`:

    submit    hold a place in the origin's queue (limits); a saturated origin pauses
              the partition that fed it (checkpoint); the release is attached here
    admit     still owned? a stale copy (stale)? the webhook known? its circuit open?
    send      inside the origin's slot (limits), over HTTP (http/)
    decide    the pure policy: hookstream.policy.decide
    record    the attempt record and the retry or DLQ record (record)
    release   the origin's place; a relieved origin resumes what fed it

A record whose partition was revoked before its request went is abandoned: the new owner
reads it again, so only requests already in flight are repeated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from connectors.delivery.checkpoint import Checkpoint
from connectors.delivery.http import HttpResult, Target, Targets
from connectors.delivery.limits import Limits
from connectors.delivery.operations import OperationalEvents
from connectors.delivery.ports import TP, HttpSender, Job
from connectors.delivery.record import Records
from connectors.delivery.stale import StaleFilter
from hookstream.io import metrics
from hookstream.policy import (
    Admission,
    Cause,
    Charge,
    CircuitBreakers,
    Decision,
    Network,
    Observed,
    circuit_charge,
    decide,
    delay_label,
    origin_of,
    tier_of,
)
from hookstream.records import DeliveryRequest, Outcome, Trigger

log = logging.getLogger(__name__)


class Abandoned(Exception):
    """The record's partition was revoked before its request went."""


@dataclass(frozen=True, slots=True)
class AttemptRules:
    """What the attempts need of the settings, resolved once."""

    tiers_s: tuple[int, ...]
    topic_delay_s: dict[str, int]  # retry topic -> its delay
    challenge_max_age_ms: int | None
    global_allow: tuple[Network, ...]
    max_tasks: int  # deliveries submitted and not finished, before the loop waits


class Worker:
    def __init__(self, rules: AttemptRules, targets: Targets, circuits: CircuitBreakers,
                 limits: Limits, stale: StaleFilter, checkpoint: Checkpoint, records: Records,
                 clock: Callable[[], float], rand: Callable[[], float],
                 operations: OperationalEvents | None = None):
        self._rules = rules
        self._operations = operations
        self._targets = targets
        self._circuits = circuits
        self._limits = limits
        self._stale = stale
        self._checkpoint = checkpoint
        self._records = records
        self._clock = clock
        self._rand = rand
        self.sender: HttpSender | None = None  # set by the service once its session is open
        self._tasks: set[asyncio.Task[None]] = set()
        self._room: asyncio.Future[None] | None = None  # set when a task finishes
        self._origins: dict[str, str] = {}  # url -> origin (or its fallback)
        self._feeding: dict[str, set[TP]] = {}  # saturated origin -> partitions paused for it
        self._closed = False  # draining: no new job starts
        self._latency = metrics.Children(metrics.LATENCY.labels)  # made once per webhook
        self._in_flight = 0  # HTTP requests under way (the in-flight gauge reads it)

    # -- tasks ----------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return len(self._tasks) >= self._rules.max_tasks

    async def room(self) -> None:
        """Until a task finishes (what asyncio.wait(FIRST_COMPLETED) does, without a
        callback per task on each call)."""
        self._room = asyncio.get_running_loop().create_future()
        await self._room
        self._room = None

    def open(self, sender: HttpSender) -> None:
        """Take jobs, sent through `sender` (the loop's HTTP session), until `drain`."""
        self.sender, self._closed = sender, False
        # Read when scraped, not counted under the gauge's lock twice per attempt.
        metrics.IN_FLIGHT.set_function(lambda: self._in_flight)

    async def drain(self, timeout_s: float) -> None:
        """Stop taking jobs (one submitted from now on, e.g. by a retry's timer, is left
        unhandled: its offset is not stored, so the next owner reads it again), then wait
        for the deliveries under way, those started while waiting included."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while self._tasks and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)

    # -- one delivery ---------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Start delivering `job`, holding a place in its origin's queue until it ends."""
        if self._closed:
            return
        origin = self._origin(job.request.url)
        if self._limits.hold(origin):
            # The origin holds as many deliveries as it may: stop reading what feeds it.
            self._checkpoint.pause(job.tp, f"origin {origin}")
            self._feeding.setdefault(origin, set()).add(job.tp)
        task = asyncio.get_running_loop().create_task(
            self._deliver(job, origin), name=job.request.delivery_id)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, origin))

    async def _deliver(self, job: Job, origin: str) -> None:
        """admit → send → decide → record, one record of a delivery at a time."""
        request = job.request
        async with self._stale.exclusive(request.delivery_id):
            if not self._checkpoint.owns(job.tp, job.generation):
                return  # revoked while it waited: the new owner reads it again
            claim = self._stale.claim(request)
            if claim is None:
                self._records.count("stale_dropped")
                self._checkpoint.done(job.tp, job.offset)
                return
            target = self._targets.get(request.webhook_id)
            if target is None:
                self._records.dead_letter(job, "webhook deleted or unknown")
                return
            started_ms = int(self._clock() * 1000)
            admission = self._circuits.admit(origin, self._clock())
            if admission is Admission.REJECT:
                observed = Observed(started_ms, started_ms, circuit_open=True,
                                    error="circuit open")
            else:
                try:
                    observed = await self._send(job, origin, target, started_ms)
                except Abandoned:
                    self._stale.unclaim(claim)  # it was not handled
                    self._records.count("abandoned_on_revoke")
                    return
                self._charge(origin, observed, request)
            tiers = target.retry_schedule_s or self._rules.tiers_s
            decision = decide(
                request,
                observed,
                target.retry_policy,
                target.sent_try,
                tiers,
                tier_of(self._rules.topic_delay_s.get(job.topic), tiers),
                self._rand(),
                challenge_max_age_ms=self._rules.challenge_max_age_ms,
                cause=self._cause(job, admission),
            )
            self._record(job, decision, tiers)

    async def _send(self, job: Job, origin: str, target: Target, started_ms: int) -> Observed:
        """The HTTP attempt, inside the origin's slot; its latency and verdict teach the
        origin's adaptive limit."""
        assert self.sender is not None, "run() sets the sender"
        async with self._limits.slot(origin, target):
            if not self._checkpoint.owns(job.tp, job.generation):
                raise Abandoned  # revoked while it waited for a slot
            self._in_flight += 1
            started = time.perf_counter()
            try:
                result = await self.sender.send(job.request, target, self._rules.global_allow)
            finally:
                latency_s = time.perf_counter() - started
                self._latency(target.webhook_id).observe(latency_s)
                self._in_flight -= 1
            observed = _observed(result, started_ms, int(self._clock() * 1000))
            charge = circuit_charge(observed)
            if charge is not Charge.NONE:
                self._limits.sample(origin, latency_s, charge is Charge.FAILURE)
        return observed

    def _charge(self, origin: str, observed: Observed, request: DeliveryRequest) -> None:
        """What the target did, charged to the origin's circuit (where a circuit opens: an
        operational event says so)."""
        charge = circuit_charge(observed)
        if charge is not Charge.NONE:
            before = self._circuits.state(origin)
            after = self._circuits.record(origin, charge is Charge.SUCCESS, self._clock())
            if self._operations is not None:
                self._operations.circuit_recorded(origin, before, after, request,
                                                  observed.finished_ms)

    def _record(self, job: Job, decision: Decision, tiers_s: tuple[int, ...]) -> None:
        if decision.forward is None:  # delivered or dead-lettered: every copy is stale
            self._stale.finished(job.request.delivery_id)
        attempt = decision.attempt
        if attempt.outcome == Outcome.DELIVERED:
            metrics.DELIVERY_LAG.observe(max(0, attempt.finished_at - job.request.created_at)
                                         / 1000)
        self._records.decision(job, decision, tiers_s)

    def _finished(self, task: asyncio.Task[None], origin: str) -> None:
        """Release what `submit` held: the task and the origin's place."""
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # A bug of hookstream's own: said loudly; the record's offset is never stored,
            # so a restart delivers it again.
            log.error("delivery of %s failed", task.get_name(), exc_info=error)
        if self._limits.release(origin):  # relieved: read what feeds it again
            for tp in self._feeding.pop(origin, ()):
                self._checkpoint.lift(tp, f"origin {origin}")
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def _cause(self, job: Job, admission: Admission) -> Cause:
        """What made this attempt: a copy from a retry tier, the first copy or a redriven
        one (a copy on hookstream.deliveries past hop 0), or the probe of a half-open
        circuit, whichever topic its copy came from."""
        delay_s = self._rules.topic_delay_s.get(job.topic)
        tier = None if delay_s is None else delay_label(delay_s)
        if admission is Admission.PROBE:
            return Cause(Trigger.PROBE, tier)
        if tier is not None:
            return Cause(Trigger.RETRY, tier)
        return Cause(Trigger.FIRST if job.request.hop == 0 else Trigger.REDRIVE)

    def _origin(self, url: str) -> str:
        origin = self._origins.get(url)
        if origin is None:
            try:
                origin = origin_of(url)
            except ValueError:
                origin = url[:64]
            if len(self._origins) >= 100_000:
                self._origins.clear()
            self._origins[url] = origin
        return origin


def _observed(result: HttpResult, started_ms: int, finished_ms: int) -> Observed:
    return Observed(
        started_ms,
        finished_ms,
        status=result.status,
        error=result.error,
        retry_after=result.headers.get("retry-after"),
        response_headers=result.headers if result.body is not None else None,
        response_body=result.body,
        blocked=result.blocked is not None,
        challenge_failed=result.challenge_failed is not None,
        token_failed=result.token_failed,
        request_headers=result.request_headers,
    )
