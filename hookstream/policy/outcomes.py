"""What follows an attempt: the attempt record and where the delivery goes next. Pure.

Sent(result)            classify + next_route: delivered, retry tier, or DLQ; the
                        record names the retry policy that judged the answer
Blocked(reason)         DLQ at once, outcome `blocked`
ChallengeFailed         next tier, no attempt spent, outcome `challenge_failed`; once
                        the delivery is older than the maximum age: DLQ, `dead_lettered`
CircuitOpen             next tier, no HTTP call, no attempt spent, outcome `circuit_open`

`circuit_charge` says what an attempt tells the target origin's circuit breaker: only
what the target itself answered (or failed to answer) is charged to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from hookstream.policy import explain
from hookstream.policy.retry import (
    DeadLetter,
    Delivered,
    Permanent,
    Response,
    RetryLater,
    RetryPolicy,
    classify,
    decisive,
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
    token_failed: bool = False  # the OAuth token endpoint failed: the target was not asked
    # The headers sent on the wire (credentials redacted); None when no request was made.
    request_headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Cause:
    """What made the attempt happen: an AttemptRecord's trigger, tier and actor."""

    trigger: str = ""
    tier: str | None = None
    actor: str | None = None


class Charge(StrEnum):
    """What an attempt tells the circuit breaker of the target's origin."""

    SUCCESS = "success"
    FAILURE = "failure"
    NONE = "none"  # not the target's doing, or no request made: the breaker is not told


# Statuses that say the target is overloaded or failing (besides no answer at all).
_FAILING_STATUS = 500


def circuit_charge(observed: Observed) -> Charge:
    """The circuit rule: a target is charged with a failure when it does not answer (time
    out, refused connection) or answers 5xx or 429; any other answer is a success. Nothing
    is charged for attempts that never reached the target: blocked by the SSRF guard, CRA
    challenge failed (the webhook's secret or the receiver's CRA handler, not its health),
    token endpoint failed (another service), circuit open, or deferred."""
    if (observed.blocked or observed.challenge_failed or observed.token_failed
            or observed.circuit_open or observed.deferred):
        return Charge.NONE
    status = observed.status
    if status is None or status >= _FAILING_STATUS or status == 429:
        return Charge.FAILURE
    return Charge.SUCCESS


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
    *,
    challenge_max_age_ms: int | None = None,
    cause: Cause = Cause(),
) -> Decision:
    """The attempt record and the forward record for one attempt (or skipped attempt).

    A failed CRA challenge waits on the next tier without spending an attempt, as in
    GLPI, but not forever: once the delivery is older than `challenge_max_age_ms`
    (from its `created_at`; None = no limit) it goes to the DLQ with the reason."""
    now_ms = observed.finished_ms
    spent = not (observed.challenge_failed or observed.circuit_open or observed.deferred)
    hop = request.hop + 1  # every forwarded copy supersedes the record it came from
    number = request.attempt + 1 if spent else request.attempt

    sent = observed.request_headers is not None

    def record(outcome: Outcome, next_step: str, reason: str | None = None,
               judged_by: RetryPolicy | None = None) -> AttemptRecord:
        return request.attempt_record(
            number,
            observed.started_ms,
            observed.finished_ms,
            outcome,
            status_code=observed.status,
            error=observed.error,
            response_headers=observed.response_headers or {},
            response_body=observed.response_body,
            trigger=cause.trigger,
            trigger_tier=cause.tier,
            actor=cause.actor,
            request_method=request.method.upper() if sent else None,
            request_url=request.url if sent else None,
            request_headers=observed.request_headers or {},
            body_sha256=hashlib.sha256(request.body).hexdigest() if sent else None,
            reason=reason,
            next_step=next_step,
            retry_policy=None if judged_by is None else judged_by.value,
        )

    def dead(reason: str) -> Forward:
        return Forward(
            DLQ_TIER,
            request.evolve(attempt=number, hop=hop, last_error=reason, last_status=observed.status),
        )

    if observed.blocked:
        why = observed.error or "blocked"
        return Decision(record(Outcome.BLOCKED, explain.blocked(why), why), dead(why))
    if (
        observed.challenge_failed
        and challenge_max_age_ms is not None
        and now_ms - request.created_at >= challenge_max_age_ms
    ):
        age_s = (now_ms - request.created_at) // 1000
        why = f"{observed.error or 'CRA challenge failed'} for {age_s}s, past its maximum age"
        return Decision(
            record(Outcome.DEAD_LETTERED, explain.challenge_expired(why), why), dead(why))
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
            record(outcome, explain.skipped(str(outcome), tiers_s[later.tier]), observed.error),
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
    response = Response(observed.status, observed.error, observed.retry_after)
    verdict = classify(policy, response, now_ms / 1000)
    decided_by = policy if decisive(response, now_ms / 1000) else None  # named in the sentence
    route = next_route(number, sent_try, verdict, tiers_s, rand, now_ms)
    gone = isinstance(verdict, Permanent) and verdict.gone
    match route:
        case Delivered():
            return Decision(
                record(Outcome.DELIVERED, explain.delivered(observed.status, decided_by),
                       judged_by=policy),
                None)
        case RetryLater(tier=tier, not_before_ms=not_before):
            reason = getattr(verdict, "reason", None)
            step = explain.retried(observed.status, observed.error, tiers_s[tier], number,
                                   sent_try, decided_by)
            return Decision(
                record(Outcome.RETRY_SCHEDULED, step, reason, judged_by=policy),
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
            step = (explain.not_retried(observed.status, observed.error, policy)
                    if isinstance(verdict, Permanent)
                    else explain.exhausted(observed.status, observed.error, number, sent_try))
            return Decision(record(Outcome.DEAD_LETTERED, step, reason, judged_by=policy),
                            dead(reason), gone=gone)
    raise AssertionError(f"unknown route {route!r}")
