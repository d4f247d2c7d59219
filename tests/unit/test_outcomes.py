"""decide(): the attempt record and the forward record for every kind of attempt."""

from __future__ import annotations

import pytest

from hookstream.policy import DLQ_TIER, Observed, RetryPolicy, decide
from hookstream.records import DeliveryRequest

TIERS = (10, 60, 600)
REQUEST = DeliveryRequest(
    delivery_id="d1", webhook_id="w1", instance="glpi", event_id="e1", itemtype="Ticket",
    items_id=7, event="new", method="POST", url="https://x/h", body=b"{}", created_at=0,
    attempt=1, hop=1)
NOW = 1_000_000


def observed(**kw: object) -> Observed:
    return Observed(NOW - 30, NOW, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("seen, outcome, attempt, tier, spent", [
    (observed(status=200), "delivered", 2, None, True),
    (observed(status=503), "retry_scheduled", 2, 1, True),
    (observed(error="timeout after 5s"), "retry_scheduled", 2, 1, True),
    (observed(status=404), "dead_lettered", 2, DLQ_TIER, True),
    (observed(blocked=True, error="blocked: loopback"), "blocked", 2, DLQ_TIER, True),
    (observed(challenge_failed=True, error="CRA challenge failed"), "challenge_failed", 1, 1,
     False),
    (observed(circuit_open=True, error="circuit open"), "circuit_open", 1, 1, False),
    (observed(deferred=True, error="target saturated"), "deferred", 1, 1, False),
])
def test_each_kind_of_attempt(seen: Observed, outcome: str, attempt: int, tier: int | None,
                              spent: bool) -> None:
    decision = decide(REQUEST, seen, RetryPolicy.DEFAULT, sent_try=3, tiers_s=TIERS,
                      current_tier=0, rand=0.5)
    assert decision.attempt.outcome == outcome
    assert decision.attempt.attempt == attempt  # challenge/circuit/deferred spend none
    assert decision.attempt.delivery_id == "d1" and decision.attempt.finished_at == NOW
    if tier is None:
        assert decision.forward is None
        return
    assert decision.forward is not None
    forward = decision.forward
    assert forward.tier == tier
    assert forward.request.hop == REQUEST.hop + 1  # the copy supersedes its source
    assert forward.request.attempt == attempt
    assert forward.request.delivery_id == REQUEST.delivery_id
    if tier != DLQ_TIER:
        assert forward.request.not_before == NOW + TIERS[tier] * 1000  # rand 0.5: no jitter


def test_exhausted_retries_and_gone_endpoints_go_to_the_dlq() -> None:
    last = REQUEST.evolve(attempt=3)
    exhausted = decide(last, observed(status=503), RetryPolicy.DEFAULT, 3, TIERS, 2, 0.5)
    assert exhausted.attempt.outcome == "dead_lettered" and exhausted.forward is not None
    assert "retries exhausted after 4 attempt(s)" in (exhausted.forward.request.last_error or "")
    gone = decide(REQUEST, observed(status=410), RetryPolicy.DEFAULT, 3, TIERS, 0, 0.5)
    assert gone.gone and gone.forward is not None and gone.forward.tier == DLQ_TIER
    glpi = decide(REQUEST, observed(status=404), RetryPolicy.GLPI, 3, TIERS, 0, 0.5)
    assert glpi.attempt.outcome == "retry_scheduled"  # GLPI retries every status >= 400


@pytest.mark.parametrize("seen, policy, outcome, judged_by", [
    (observed(status=401), RetryPolicy.GLPI, "retry_scheduled", "glpi"),
    (observed(status=401), RetryPolicy.DEFAULT, "dead_lettered", "default"),
    (observed(status=410), RetryPolicy.GLPI, "dead_lettered", "glpi"),
    (observed(status=302), RetryPolicy.GLPI, "delivered", "glpi"),
    (observed(status=302), RetryPolicy.DEFAULT, "dead_lettered", "default"),
    (observed(status=204), RetryPolicy.DEFAULT, "delivered", "default"),
    (observed(error="timeout after 5s"), RetryPolicy.GLPI, "retry_scheduled", "glpi"),
    (observed(token_failed=True, error="oauth: HTTP 500"), RetryPolicy.DEFAULT,
     "retry_scheduled", "default"),
    # no answer was judged: no policy named
    (observed(blocked=True, error="blocked: loopback"), RetryPolicy.GLPI, "blocked", None),
    (observed(circuit_open=True), RetryPolicy.GLPI, "circuit_open", None),
    (observed(deferred=True), RetryPolicy.GLPI, "deferred", None),
    (observed(challenge_failed=True), RetryPolicy.GLPI, "challenge_failed", None),
])
def test_the_attempt_record_names_the_policy_that_judged_the_answer(
        seen: Observed, policy: RetryPolicy, outcome: str, judged_by: str | None) -> None:
    decision = decide(REQUEST, seen, policy, sent_try=3, tiers_s=TIERS, current_tier=0,
                      rand=0.5)
    assert (decision.attempt.outcome, decision.attempt.retry_policy) == (outcome, judged_by)


def test_gone_is_permanent_under_both_policies() -> None:
    for policy in RetryPolicy:
        gone = decide(REQUEST, observed(status=410), policy, 3, TIERS, 0, 0.5)
        assert gone.gone and gone.forward is not None and gone.forward.tier == DLQ_TIER
        assert gone.attempt.attempt == 2 and gone.attempt.outcome == "dead_lettered"
