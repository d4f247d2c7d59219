"""The delivery rules moved into the pure core: circuit charge, tier <-> topic mapping,
challenge maximum age, and the adaptive concurrency limit. Table-driven."""

from __future__ import annotations

import pytest

from hookstream.policy import (
    DLQ_TIER,
    NO_TIER,
    AdaptiveLimit,
    Charge,
    Observed,
    RetryPolicy,
    circuit_charge,
    decide,
    tier_of,
    topic_of,
)
from hookstream.records import DeliveryRequest


@pytest.mark.parametrize("observed, charge", [
    (Observed(0, 1, status=200), Charge.SUCCESS),
    (Observed(0, 1, status=404), Charge.SUCCESS),  # the target answered: it is up
    (Observed(0, 1, status=302), Charge.SUCCESS),
    (Observed(0, 1, status=500), Charge.FAILURE),
    (Observed(0, 1, status=503), Charge.FAILURE),
    (Observed(0, 1, status=429), Charge.FAILURE),
    (Observed(0, 1, error="timeout after 5s"), Charge.FAILURE),
    (Observed(0, 1, error="connection failed: refused"), Charge.FAILURE),
    (Observed(0, 1, error="oauth: HTTP 401", token_failed=True), Charge.NONE),
    (Observed(0, 1, error="CRA challenge failed", challenge_failed=True), Charge.NONE),
    (Observed(0, 1, error="blocked: loopback", blocked=True), Charge.NONE),
    (Observed(0, 0, error="circuit open", circuit_open=True), Charge.NONE),
])
def test_circuit_charge(observed: Observed, charge: Charge) -> None:
    assert circuit_charge(observed) is charge


@pytest.mark.parametrize("delay_s, tiers, tier", [
    (None, (10, 60, 600), NO_TIER),
    (10, (10, 60, 600), 0),
    (600, (10, 60, 600), 2),
    (60, (30, 120), 0),  # a webhook schedule without 60 s: the nearest delay
    (3600, (10, 60, 600), 2),
])
def test_tier_of(delay_s: int | None, tiers: tuple[int, ...], tier: int) -> None:
    assert tier_of(delay_s, tiers) == tier


@pytest.mark.parametrize("tier, tiers, configured, index", [
    (0, (10, 60, 600), (10, 60, 600), 0),
    (2, (10, 60, 600), (10, 60, 600), 2),
    (1, (60, 600), (10, 60, 600), 2),  # the webhook's second tier is 600 s
    (0, (30,), (10, 60, 600), 0),  # nearest configured delay
])
def test_topic_of(tier: int, tiers: tuple[int, ...], configured: tuple[int, ...],
                  index: int) -> None:
    assert topic_of(tier, tiers, configured) == index


def test_topic_of_rejects_a_tier_outside_the_schedule() -> None:
    with pytest.raises(ValueError, match="not in a schedule"):
        topic_of(3, (10, 60), (10, 60))


REQUEST = DeliveryRequest(
    delivery_id="d1", webhook_id="w1", instance="glpi", event_id="e1", itemtype="Ticket",
    items_id=7, event="new", method="POST", url="https://x/h", body=b"{}", created_at=0)
FAILED = dict(error="CRA challenge failed", challenge_failed=True)


@pytest.mark.parametrize("now_ms, max_age_ms, outcome, tier", [
    (59_999, 60_000, "challenge_failed", 0),
    (60_000, 60_000, "dead_lettered", DLQ_TIER),
    (10**9, None, "challenge_failed", 0),  # no limit: waits forever, as GLPI does
])
def test_challenge_maximum_age(now_ms: int, max_age_ms: int | None, outcome: str,
                               tier: int) -> None:
    seen = Observed(now_ms, now_ms, **FAILED)  # type: ignore[arg-type]
    decision = decide(REQUEST, seen, RetryPolicy.DEFAULT, 3, (10, 60), NO_TIER, 0.5,
                      challenge_max_age_ms=max_age_ms)
    assert decision.attempt.outcome == outcome and decision.attempt.attempt == 0
    assert decision.forward is not None and decision.forward.tier == tier
    if tier == DLQ_TIER:
        assert "past its maximum age" in (decision.forward.request.last_error or "")


def test_limit_climbs_for_a_fast_receiver_up_to_its_maximum() -> None:
    limit = AdaptiveLimit(maximum=64)
    assert limit.allowed == 16  # starts at a quarter
    for i in range(5000):
        limit.sample(0.005, failed=False, in_flight=limit.allowed, now_s=i * 0.01)
    assert limit.allowed == 64


def test_limit_is_not_raised_when_unused() -> None:
    limit = AdaptiveLimit(maximum=64)
    for i in range(5000):
        limit.sample(0.005, failed=False, in_flight=1, now_s=i * 0.01)
    assert limit.allowed == 16


@pytest.mark.parametrize("latency_s, failed, allowed", [
    (0.010, True, 12),  # a failure: x 0.75
    (0.500, False, 12),  # queueing: latency far above the 10 ms baseline
    (0.015, False, 16),  # within tolerance of the baseline: kept (+1/16 rounds down)
    (0.040, False, 16),  # under the 50 ms floor: never taken for queueing
])
def test_one_sample_after_a_baseline(latency_s: float, failed: bool, allowed: int) -> None:
    limit = AdaptiveLimit(maximum=64)
    limit.sample(0.010, failed=False, in_flight=1, now_s=0.0)  # baseline 10 ms
    limit.sample(latency_s, failed=failed, in_flight=16, now_s=1.0)
    assert limit.allowed == allowed


def test_a_burst_of_failures_cuts_once_per_latency_then_bottoms_out() -> None:
    limit = AdaptiveLimit(maximum=64)
    for _ in range(10):  # ten timeouts answered at the same moment: one cut
        limit.sample(2.0, failed=True, in_flight=16, now_s=5.0)
    assert limit.allowed == 12
    for i in range(100):
        limit.sample(2.0, failed=True, in_flight=1, now_s=10.0 + 3 * i)
    assert limit.allowed == 1


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimit(maximum=0)
    with pytest.raises(ValueError):
        AdaptiveLimit(maximum=4, minimum=5)
