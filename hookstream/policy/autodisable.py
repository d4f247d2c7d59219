"""Auto-disable: when a webhook's target has failed every attempt for long enough.

A webhook's deliveries are spread over many partitions and delivery processes, so no
delivery process sees all its attempts; the log store reads every attempt and keeps, per
webhook, the summary below (`observe` folds one attempt into it). The rule, as Svix's:

    disable when no attempt succeeded since the first failure F (F counted from the
    last re-enable at the earliest), now - F >= the threshold, and the latest failure
    is fresh (at most FRESH_MS old: attempts are still failing now).

The freshness bound keeps a log store catching up (after an outage, reading attempts
hours old) from disabling on evidence that later attempts, not read yet, may refute.
Attempts arrive out of order across partitions; the fold is idempotent and, where it
cannot know the exact first failure after a late success, keeps a later one (the streak
looks shorter: a webhook may be disabled later than exact, never earlier).

Counted as failures: attempts that sent a request, or tried to, and failed (retry
scheduled, dead-lettered, blocked, challenge failed, a manual send that failed). Not
counted: attempts that sent nothing (circuit open, deferred) and render errors (the
template's fault, not the target's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from hookstream.records import Outcome

FRESH_MS = 3_600_000
FAILED = frozenset({Outcome.RETRY_SCHEDULED, Outcome.DEAD_LETTERED, Outcome.BLOCKED,
                    Outcome.CHALLENGE_FAILED, Outcome.FAILED})


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """What the attempts of one webhook say about its target (Unix ms, None: none seen)."""

    last_success_ms: int | None = None
    first_failure_ms: int | None = None  # the first failure after the last success
    last_failure_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Disable:
    """The verdict: disable, failing since `since_ms`, for `reason`."""

    since_ms: int
    reason: str


def counts(outcome: str) -> bool | None:
    """True for a success, False for a failure, None for an attempt that says nothing of
    the target."""
    if outcome == Outcome.DELIVERED:
        return True
    return False if outcome in FAILED else None


def observe(health: TargetHealth, finished_ms: int, success: bool) -> TargetHealth:
    """`health` with one more attempt, finished at `finished_ms`; in any order, any times."""
    if success:
        if health.last_success_ms is not None and finished_ms <= health.last_success_ms:
            return health
        later = health.last_failure_ms is not None and health.last_failure_ms > finished_ms
        first = health.first_failure_ms
        if first is not None and first <= finished_ms:
            # failures after this success exist only if the latest one is after it
            first = health.last_failure_ms if later else None
        return replace(health, last_success_ms=finished_ms, first_failure_ms=first)
    last = max(finished_ms, health.last_failure_ms or finished_ms)
    if health.last_success_ms is not None and finished_ms <= health.last_success_ms:
        return replace(health, last_failure_ms=last)
    first = min(finished_ms, health.first_failure_ms or finished_ms)
    return replace(health, first_failure_ms=first, last_failure_ms=last)


def verdict(health: TargetHealth, now_ms: int, after_ms: int, enabled_at_ms: int = 0
            ) -> Disable | None:
    """Disable, or None: see the module docstring. `after_ms` 0 never disables."""
    first, last = health.first_failure_ms, health.last_failure_ms
    if after_ms <= 0 or first is None or last is None:
        return None
    since_ms = max(first, enabled_at_ms)
    if last < since_ms or now_ms - since_ms < after_ms or now_ms - last > FRESH_MS:
        return None
    return Disable(since_ms, f"every attempt failed since {_utc(since_ms)} "
                             f"({_days(now_ms - since_ms)}; threshold {_days(after_ms)})")


def _utc(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(duration_ms: int) -> str:
    seconds = duration_ms // 1000
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds} s"
