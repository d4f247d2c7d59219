"""Auto-disable's rule as a pure function: the fold of attempts and the verdict, time given."""

from __future__ import annotations

from functools import reduce

import pytest

from hookstream.policy import TargetHealth, counts, observe, verdict
from hookstream.policy.autodisable import FRESH_MS
from hookstream.records import Outcome

DAY = 86_400_000
T0 = 1_800_000_000_000
AFTER = 5 * DAY


def fold(*attempts: tuple[int, bool]) -> TargetHealth:
    return reduce(lambda h, a: observe(h, *a), attempts, TargetHealth())


def test_failing_exactly_at_the_threshold_disables() -> None:
    health = fold((T0, False), (T0 + AFTER, False))
    found = verdict(health, T0 + AFTER, AFTER)
    assert found is not None and found.since_ms == T0
    assert "every attempt failed since 2027-01-15T08:00:00Z (5.0 days" in found.reason
    assert verdict(health, T0 + AFTER - 1, AFTER) is None  # a millisecond short


def test_a_success_in_between_resets_the_streak() -> None:
    health = fold((T0, False), (T0 + DAY, True), (T0 + 2 * DAY, False), (T0 + AFTER, False))
    assert health.first_failure_ms == T0 + 2 * DAY
    assert verdict(health, T0 + AFTER, AFTER) is None
    assert verdict(health, T0 + 2 * DAY + AFTER, AFTER) is None  # last failure not fresh
    later = observe(health, T0 + 2 * DAY + AFTER, False)
    assert verdict(later, T0 + 2 * DAY + AFTER, AFTER) is not None


def test_no_attempts_at_all_does_not_disable() -> None:
    assert verdict(TargetHealth(), T0 + 100 * DAY, AFTER) is None


def test_only_successes_do_not_disable() -> None:
    assert verdict(fold((T0, True), (T0 + AFTER, True)), T0 + AFTER, AFTER) is None


def test_stale_evidence_waits_for_fresh_failures() -> None:
    """A log store catching up reads failures hours old: no verdict on them."""
    health = fold((T0, False), (T0 + AFTER, False))
    assert verdict(health, T0 + AFTER + FRESH_MS, AFTER) is not None
    assert verdict(health, T0 + AFTER + FRESH_MS + 1, AFTER) is None


def test_a_re_enable_restarts_the_count() -> None:
    health = fold((T0, False), (T0 + 6 * DAY, False))
    assert verdict(health, T0 + 6 * DAY, AFTER, enabled_at_ms=T0 + 6 * DAY - 1000) is None
    found = verdict(health, T0 + 6 * DAY, AFTER, enabled_at_ms=T0 + DAY)
    assert found is not None and found.since_ms == T0 + DAY


def test_zero_threshold_never_disables() -> None:
    assert verdict(fold((T0, False), (T0 + 100 * DAY, False)), T0 + 100 * DAY, 0) is None


@pytest.mark.parametrize("order", [
    [(T0, False), (T0 + DAY, True), (T0 + 2 * DAY, False)],
    [(T0 + 2 * DAY, False), (T0, False), (T0 + DAY, True)],
    [(T0 + DAY, True), (T0 + 2 * DAY, False), (T0, False)],
])
def test_order_of_arrival_gives_the_same_streak(order: list[tuple[int, bool]]) -> None:
    assert fold(*order) == TargetHealth(T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY)


def test_a_late_success_keeps_a_later_failure_not_an_earlier_one() -> None:
    """Failures at 0 and 3 days, then a success at 2 days read late: the streak starts
    at 3 days (the only failure known after it), never at 0."""
    health = fold((T0, False), (T0 + 3 * DAY, False), (T0 + 2 * DAY, True))
    assert health.first_failure_ms == T0 + 3 * DAY


def test_the_same_attempt_twice_changes_nothing() -> None:
    once = fold((T0, False), (T0 + DAY, True), (T0 + 2 * DAY, False))
    assert observe(observe(once, T0 + DAY, True), T0 + 2 * DAY, False) == once


@pytest.mark.parametrize(("outcome", "expected"), [
    (Outcome.DELIVERED, True), (Outcome.RETRY_SCHEDULED, False), (Outcome.DEAD_LETTERED, False),
    (Outcome.BLOCKED, False), (Outcome.FAILED, False), (Outcome.CIRCUIT_OPEN, None),
    (Outcome.DEFERRED, None), (Outcome.RENDER_ERROR, None),
])
def test_which_attempts_count(outcome: Outcome, expected: bool | None) -> None:
    assert counts(outcome) is expected
