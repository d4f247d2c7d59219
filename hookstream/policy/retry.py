"""Retry policy: which outcomes are retried, and where a failed delivery goes next.

Policy is data plus two small pure functions. `classify` turns what the sender
observed into a verdict; `next_route` turns a verdict into a route:

    Success    ──▶ Delivered
    Permanent  ──▶ DeadLetter(reason)
    Retryable  ──▶ RetryLater(tier, delay_s, not_before_ms)   while attempts remain
               ──▶ DeadLetter(reason)                         once they are spent

Retry tiers are one topic per delay, `hookstream.retry.<label>` (10s, 1m, 10m, 1h,
6h by default). Tier indexes are 0-based positions in the tier list, so a caller
finds the topic with `tier_topics(prefix, tiers_s)[route.tier]`.

Time and randomness are arguments (`now_s`, `now_ms`, `rand`), so tests can
assert exact values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum

DEFAULT_TIERS_S: tuple[int, ...] = (10, 60, 600, 3600, 21600)

# Jitter spreads the retries of a burst of failures over ±20 % of the tier delay, so
# an endpoint that comes back is not hit by every queued delivery in the same second.
JITTER = 0.2

# A tier that a delivery has not reached yet: it comes from the main deliveries
# topic. `skip_tier(NO_TIER, ...)` moves it to the first tier.
NO_TIER = -1

# Largest unit first, so that a delay gets its shortest exact spelling.
_UNITS: tuple[tuple[str, int], ...] = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_UNIT_S = dict(_UNITS)
_LABEL = re.compile(r"([0-9]+)([smhd])")


class RetryPolicy(StrEnum):
    """Which outcomes a webhook retries. 410 Gone is never retried under either."""

    GLPI = "glpi"
    """GLPI's rule, the default: any status >= 400 but 410, or no response, is retried;
    below 400 is success."""
    DEFAULT = "default"
    """Retry only what may pass: no response, 408, 425, 429 and 5xx."""


def delay_label(seconds: int) -> str:
    """The topic suffix of a delay: 10 -> "10s", 60 -> "1m", 90 -> "90s", 86400 -> "1d"."""
    if seconds <= 0:
        raise ValueError(f"a retry delay must be positive, got {seconds}")
    for unit, size in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every integer is a whole number of seconds")


def parse_delay(label: str) -> int:
    """Seconds in a delay label such as "10s", "1m", "6h", "1d"; ValueError otherwise."""
    match = _LABEL.fullmatch(label.strip())
    if match is None:
        raise ValueError(f"{label!r} is not a delay such as 10s, 1m, 1h, 1d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a retry delay must be positive, got {label!r}")
    return seconds


def tier_topics(prefix: str, tiers_s: Sequence[int]) -> tuple[str, ...]:
    """The retry topic of each tier, in tier order."""
    return tuple(f"{prefix}hookstream.retry.{delay_label(s)}" for s in tiers_s)


@dataclass(frozen=True, slots=True)
class Response:
    """What the sender observed for one attempt."""

    status: int | None
    """HTTP status; None when no response came (timeout, connection error)."""
    error: str | None = None
    """Why no response came, or any other detail worth putting in the reason."""
    retry_after: str | None = None
    """The raw `Retry-After` header value, if any."""


@dataclass(frozen=True, slots=True)
class Success:
    """The target accepted the delivery."""


@dataclass(frozen=True, slots=True)
class Retryable:
    """A failure that may pass; `retry_after_s` is the target's hint, if it gave one."""

    reason: str
    retry_after_s: float | None


@dataclass(frozen=True, slots=True)
class Permanent:
    """A failure that retrying cannot fix; `gone` marks 410 so metrics can count it."""

    reason: str
    gone: bool = False


Verdict = Success | Retryable | Permanent

# Statuses the default policy retries besides 5xx: request timeout, too early,
# too many requests. Every other 4xx means the request itself is wrong.
_RETRYABLE_4XX = frozenset({408, 425, 429})


def classify(policy: RetryPolicy, response: Response, now_s: float) -> Verdict:
    """The verdict on one attempt under a webhook's retry policy.

    Redirects are never followed (the SSRF guard checks the address connected to,
    and a redirect would bypass it). Under the GLPI policy a 3xx is therefore a
    success, as GLPI counts every status below 400; under the default policy it is
    a permanent failure, since the payload never reached its handler.

    410 Gone is permanent under both: the target says the endpoint is gone for good,
    and retrying it for hours would only hold the delivery back from the DLQ.

    `Retry-After` is read from any retryable response under either policy: it only
    moves the retry within bounds (see `next_route`), so honouring it is safe.
    `now_s` (Unix seconds) resolves the HTTP-date form of that header.
    """
    status = response.status
    if status is None:
        return Retryable(_reason("no response", response.error), None)
    reason = _reason(f"HTTP {status}", response.error)
    hint = None if response.retry_after is None else parse_retry_after(response.retry_after,
                                                                        now_s)
    if status == 410:
        return Permanent(reason, gone=True)
    if policy is RetryPolicy.GLPI:
        return Success() if status < 400 else Retryable(reason, hint)
    if 200 <= status < 300:
        return Success()
    if 300 <= status < 400:
        return Permanent(_reason(f"HTTP {status}: redirect not followed (3xx)", response.error))
    # 5xx and beyond: a server-side fault may pass, and a dropped delivery costs more
    # than a bounded number of retries.
    if status >= 500 or status in _RETRYABLE_4XX:
        return Retryable(reason, hint)
    # The remaining 4xx, and 1xx, which is never a valid final answer.
    return Permanent(reason)


def decisive(response: Response, now_s: float) -> bool:
    """Whether the policy decides the verdict: the two policies judge `response` apart (a
    3xx, or a 4xx other than 408, 410, 425 and 429)."""
    status = response.status
    if status is None or 200 <= status < 300 or status >= 500:
        return False  # no answer, a 2xx, a 5xx: alike under both (asked on every attempt)
    return len({type(classify(policy, response, now_s)) for policy in RetryPolicy}) > 1


def _reason(head: str, detail: str | None) -> str:
    return head if not detail else f"{head}: {detail}"


@dataclass(frozen=True, slots=True)
class Delivered:
    """Done: record the attempt and commit."""


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Produce to the retry topic of `tier` (0-based), due at `not_before_ms` (Unix ms)."""

    tier: int
    delay_s: float
    not_before_ms: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Produce to the DLQ with `reason`."""

    reason: str


Route = Delivered | RetryLater | DeadLetter


def next_route(attempt: int, sent_try: int, verdict: Verdict, tiers_s: Sequence[int],
               rand: float, now_ms: int) -> Route:
    """Where a delivery goes after attempt number `attempt` (1-based) got `verdict`.

    `sent_try` is the webhook's number of retries, as in GLPI: up to `sent_try + 1`
    attempts in all, so a retryable failure of attempt `sent_try + 1` goes to the DLQ.
    The n-th retry (the one after attempt n) waits on tier min(n, last).

    The tier delay is jittered by `rand` in [0, 1): factor 1 + 0.2 * (2 * rand - 1).
    A `Retry-After` hint replaces it, clamped to [tier delay, 2 x tier delay] and not
    jittered: the target named a time, and jitter could land before it.
    """
    _check_tiers(tiers_s)
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if sent_try < 0:
        raise ValueError(f"sent_try cannot be negative, got {sent_try}")
    match verdict:
        case Success():
            return Delivered()
        case Permanent(reason=reason):
            return DeadLetter(reason)
        case Retryable(reason=reason, retry_after_s=hint):
            if attempt >= sent_try + 1:
                return DeadLetter(f"retries exhausted after {attempt} attempt(s): {reason}")
            tier = min(attempt, len(tiers_s)) - 1
            base_s = tiers_s[tier]
            if hint is None:
                return _later(tier, _jittered(base_s, rand), now_ms)
            return _later(tier, min(max(hint, float(base_s)), 2.0 * base_s), now_ms)
    raise TypeError(f"not a verdict: {verdict!r}")


def skip_tier(tier: int, tiers_s: Sequence[int], rand: float, now_ms: int) -> RetryLater:
    """Move a due delivery to the next tier without spending an attempt.

    Used while the target's circuit is open: the delivery waits on tier
    min(tier + 1, last) with the usual jitter. Pass `NO_TIER` for a delivery that is
    not on a retry tier yet.
    """
    _check_tiers(tiers_s)
    if tier < NO_TIER:
        raise ValueError(f"not a tier: {tier}")
    nxt = min(tier + 1, len(tiers_s) - 1)
    return _later(nxt, _jittered(tiers_s[nxt], rand), now_ms)


def parse_retry_after(value: str, now_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date.

    None when the value is unparseable, or names a time already past: there is then
    no usable hint and the tier delay applies.
    """
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime form and "-0000" carry no zone: HTTP means GMT
        when = when.replace(tzinfo=UTC)
    delta_s = when.timestamp() - now_s
    return delta_s if delta_s >= 0 else None


def tier_of(delay_s: int | None, tiers_s: Sequence[int]) -> int:
    """The tier of `tiers_s` (a webhook's schedule) that a record read from a retry topic
    of `delay_s` is on: the tier of that delay, else the nearest one; `NO_TIER` for a
    record from the deliveries topic (`delay_s` None)."""
    _check_tiers(tiers_s)
    if delay_s is None:
        return NO_TIER
    if delay_s in tiers_s:
        return list(tiers_s).index(delay_s)
    return min(range(len(tiers_s)), key=lambda i: abs(tiers_s[i] - delay_s))


def topic_of(tier: int, tiers_s: Sequence[int], configured_s: Sequence[int]) -> int:
    """Which configured retry topic (an index into `configured_s`, the topics' delays)
    carries tier `tier` of a webhook's schedule `tiers_s`: the topic of the same delay,
    else the one of the nearest delay (a schedule validated against other tiers)."""
    _check_tiers(tiers_s)
    _check_tiers(configured_s)
    if not 0 <= tier < len(tiers_s):
        raise ValueError(f"tier {tier} is not in a schedule of {len(tiers_s)} tier(s)")
    delay_s = tiers_s[tier]
    if delay_s in configured_s:
        return list(configured_s).index(delay_s)
    return min(range(len(configured_s)), key=lambda i: abs(configured_s[i] - delay_s))


def _jittered(base_s: int, rand: float) -> float:
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand}")
    return base_s * (1.0 + JITTER * (2.0 * rand - 1.0))


def _later(tier: int, delay_s: float, now_ms: int) -> RetryLater:
    return RetryLater(tier, delay_s, now_ms + round(delay_s * 1000))


def _check_tiers(tiers_s: Sequence[int]) -> None:
    if not tiers_s:
        raise ValueError("at least one retry tier is needed")
    if any(s <= 0 for s in tiers_s):
        raise ValueError(f"retry delays must be positive, got {list(tiers_s)}")
