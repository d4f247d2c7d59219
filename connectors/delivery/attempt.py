"""One delivery: its stale check, circuit admission, limits, the HTTP attempt, the
decision of the pure core, and its outcome records.

    stale copy?        dropped, offset freed (stale)
    circuit open?      `circuit_open`, next tier, no request
    else               wait for the limits (limits), send, charge the circuit and
                       the adaptive limit with what the target did (policy.circuit_charge)
    then               decide() -> attempt record + retry or DLQ record (outcomes)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from connectors.delivery.http.sender import HttpResult, Target
from connectors.delivery.limits import Limits
from connectors.delivery.outcomes import OutcomeWriter
from connectors.delivery.ports import TP, HttpSender
from connectors.delivery.stale import StaleFilter
from hookstream.io import metrics
from hookstream.policy import (
    Admission,
    Cause,
    Charge,
    CircuitBreakers,
    Network,
    Observed,
    SecretBox,
    circuit_charge,
    decide,
    delay_label,
    tier_of,
)
from hookstream.records import DeliveryRequest, Outcome, Trigger, WebhookDefinition


class Abandoned(Exception):
    """The record's partition was revoked before its request went."""


class Targets:
    """The webhooks table as the attempts need it: definitions, and their targets with
    secrets decrypted on first use (in memory only)."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self.webhooks: dict[str, WebhookDefinition] = {}
        self._targets: dict[str, Target] = {}

    def put(self, webhook_id: str, definition: WebhookDefinition | None) -> None:
        self._targets.pop(webhook_id, None)
        if definition is None:
            self.webhooks.pop(webhook_id, None)
        else:
            self.webhooks[webhook_id] = definition

    def get(self, webhook_id: str) -> Target | None:
        target = self._targets.get(webhook_id)
        if target is None:
            definition = self.webhooks.get(webhook_id)
            if definition is None:
                return None
            target = self._targets[webhook_id] = Target.of(definition, self._box)
        return target


@dataclass(frozen=True, slots=True)
class AttemptRules:
    """What the attempts need of the settings, resolved once."""

    tiers_s: tuple[int, ...]
    topic_delay_s: dict[str, int]  # retry topic -> its delay
    challenge_max_age_ms: int | None
    global_allow: tuple[Network, ...]


class Attempts:
    def __init__(self, rules: AttemptRules, target: Callable[[str], Target | None],
                 circuits: CircuitBreakers, limits: Limits, stale: StaleFilter,
                 outcomes: OutcomeWriter, clock: Callable[[], float],
                 rand: Callable[[], float]):
        self._rules = rules
        self._target = target
        self._circuits = circuits
        self._limits = limits
        self._stale = stale
        self._outcomes = outcomes
        self._clock = clock
        self._rand = rand
        self.sender: HttpSender | None = None  # set by the service once its session is open

    async def deliver(
        self, tp: TP, offset: int, request: DeliveryRequest, topic: str, origin: str,
        generation: int,
    ) -> None:
        """Deliver one record read from `tp` while this process owned it (`generation`).
        A record whose partition was revoked before its request went is abandoned: the
        new owner reads it again, so only requests already in flight are repeated."""
        try:
            async with self._stale.exclusive(request.delivery_id):
                if not self._outcomes.owns(tp, generation):
                    return
                before = self._stale.handled(request.delivery_id)
                if not self._stale.admit(request):
                    self._outcomes.count("stale_dropped")
                    self._outcomes.done(tp, offset)
                    return
                try:
                    await self._attempt(tp, offset, request, topic, origin, generation)
                except Abandoned:
                    self._stale.restore(request.delivery_id, before)  # it was not handled
                    self._outcomes.count("abandoned_on_revoke")
        finally:
            self._limits.release(origin)

    async def _attempt(
        self, tp: TP, offset: int, request: DeliveryRequest, topic: str, origin: str,
        generation: int,
    ) -> None:
        target = self._target(request.webhook_id)
        if target is None:
            self._outcomes.dead(tp, offset, request, "webhook deleted or unknown")
            return
        tiers = target.retry_schedule_s or self._rules.tiers_s
        started_ms = int(self._clock() * 1000)
        admission = self._circuits.admit(origin, self._clock())
        cause = self._cause(request, topic, admission)
        if admission is Admission.REJECT:
            observed = Observed(started_ms, started_ms, circuit_open=True, error="circuit open")
        else:
            observed = await self._send(origin, request, target, started_ms,
                                        lambda: self._outcomes.owns(tp, generation))
            charge = circuit_charge(observed)
            if charge is not Charge.NONE:
                self._circuits.record(origin, charge is Charge.SUCCESS, self._clock())
        decision = decide(
            request,
            observed,
            target.retry_policy,
            target.sent_try,
            tiers,
            tier_of(self._rules.topic_delay_s.get(topic), tiers),
            self._rand(),
            challenge_max_age_ms=self._rules.challenge_max_age_ms,
            cause=cause,
        )
        if decision.forward is None:
            self._stale.finished(request.delivery_id)
        if decision.attempt.outcome == Outcome.DELIVERED:
            metrics.DELIVERY_LAG.observe(
                max(0, decision.attempt.finished_at - request.created_at) / 1000)
        self._outcomes.decision(tp, offset, decision, tiers, generation)

    def _cause(self, request: DeliveryRequest, topic: str, admission: Admission) -> Cause:
        """What made this attempt: a copy from a retry tier, the first copy or a redriven
        one (a copy on hookstream.deliveries past hop 0), or the probe of a half-open
        circuit, whichever topic its copy came from."""
        delay_s = self._rules.topic_delay_s.get(topic)
        tier = None if delay_s is None else delay_label(delay_s)
        if admission is Admission.PROBE:
            return Cause(Trigger.PROBE, tier)
        if tier is not None:
            return Cause(Trigger.RETRY, tier)
        return Cause(Trigger.FIRST if request.hop == 0 else Trigger.REDRIVE)

    async def _send(
        self, origin: str, request: DeliveryRequest, target: Target, started_ms: int,
        owned: Callable[[], bool],
    ) -> Observed:
        assert self.sender is not None, "run() sets the sender"
        async with self._limits.slot(origin, target):
            if not owned():  # revoked while it waited for a slot
                raise Abandoned
            metrics.IN_FLIGHT.inc()
            started = time.perf_counter()
            try:
                result = await self.sender.send(request, target, self._rules.global_allow)
            finally:
                latency_s = time.perf_counter() - started
                metrics.LATENCY.labels(target.webhook_id).observe(latency_s)
                metrics.IN_FLIGHT.dec()
            observed = _observed(result, started_ms, int(self._clock() * 1000))
            charge = circuit_charge(observed)
            if charge is not Charge.NONE:  # the origin's adaptive limit learns from it
                self._limits.sample(
                    origin, latency_s, charge is Charge.FAILURE, self._limits.in_flight(origin)
                )
        return observed


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


