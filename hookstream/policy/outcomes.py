"""What follows an attempt: the attempt record and where the delivery goes next. Pure.

Sent(result)            classify + next_route: delivered, retry tier, or DLQ
Blocked(reason)         DLQ at once, outcome `blocked`
ChallengeFailed         next tier, no attempt spent, outcome `challenge_failed`
CircuitOpen             next tier, no HTTP call, no attempt spent, outcome `circuit_open`
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hookstream.policy.retry import (
    DeadLetter,
    Delivered,
    Permanent,
    Response,
    RetryLater,
    RetryPolicy,
    classify,
    next_route,
    skip_tier,
)
from hookstream.records import AttemptRecord, DeliveryRequest, Outcome

DLQ_TIER = -2  # Forward.tier for the dead-letter queue


@dataclass(frozen=True, slots=True)
class Observed:
    """What an attempt observed, or why none was made."""

    started_ms: int
    finished_ms: int
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    response_headers: dict[str, str] | None = None
    response_body: bytes | None = None
    blocked: bool = False
    challenge_failed: bool = False
    circuit_open: bool = False
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class Forward:
    """A record to produce after the attempt: to tier index `tier`, or to the DLQ."""

    tier: int
    request: DeliveryRequest


@dataclass(frozen=True, slots=True)
class Decision:
    attempt: AttemptRecord
    forward: Forward | None
    gone: bool = False  # HTTP 410: the endpoint is gone (counted in metrics)


def decide(
    request: DeliveryRequest,
    observed: Observed,
    policy: RetryPolicy,
    sent_try: int,
    tiers_s: Sequence[int],
    current_tier: int,
    rand: float,
) -> Decision:
    """The attempt record and the forward record for one attempt (or skipped attempt)."""
    now_ms = observed.finished_ms
    spent = not (observed.challenge_failed or observed.circuit_open or observed.deferred)
    hop = request.hop + 1  # every forwarded copy supersedes the record it came from
    number = request.attempt + 1 if spent else request.attempt

    def record(outcome: Outcome) -> AttemptRecord:
        return request.attempt_record(
            number,
            observed.started_ms,
            observed.finished_ms,
            outcome,
            status_code=observed.status,
            error=observed.error,
            response_headers=observed.response_headers or {},
            response_body=observed.response_body,
        )

    def dead(reason: str) -> Forward:
        return Forward(
            DLQ_TIER,
            request.evolve(attempt=number, hop=hop, last_error=reason, last_status=observed.status),
        )

    if observed.blocked:
        return Decision(record(Outcome.BLOCKED), dead(observed.error or "blocked"))
    if not spent:
        later = skip_tier(current_tier, tiers_s, rand, now_ms)
        outcome = (
            Outcome.CHALLENGE_FAILED
            if observed.challenge_failed
            else Outcome.CIRCUIT_OPEN
            if observed.circuit_open
            else Outcome.DEFERRED
        )
        return Decision(
            record(outcome),
            Forward(
                later.tier,
                request.evolve(
                    hop=hop,
                    not_before=later.not_before_ms,
                    retry_tier=later.tier,
                    last_error=observed.error,
                    last_status=observed.status,
                ),
            ),
        )
    verdict = classify(
        policy, Response(observed.status, observed.error, observed.retry_after), now_ms / 1000
    )
    route = next_route(number, sent_try, verdict, tiers_s, rand, now_ms)
    gone = isinstance(verdict, Permanent) and verdict.gone
    match route:
        case Delivered():
            return Decision(record(Outcome.DELIVERED), None)
        case RetryLater(tier=tier, not_before_ms=not_before):
            reason = getattr(verdict, "reason", None)
            return Decision(
                record(Outcome.RETRY_SCHEDULED),
                Forward(
                    tier,
                    request.evolve(
                        attempt=number,
                        hop=hop,
                        not_before=not_before,
                        retry_tier=tier,
                        last_error=reason,
                        last_status=observed.status,
                    ),
                ),
            )
        case DeadLetter(reason=reason):
            return Decision(record(Outcome.DEAD_LETTERED), dead(reason), gone=gone)
    raise AssertionError(f"unknown route {route!r}")
