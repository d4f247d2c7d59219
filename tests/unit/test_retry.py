"""Retry policy: classification, routing, jitter, Retry-After and tier labels."""

from __future__ import annotations

import pytest

from hookstream.policy import (
    DEFAULT_TIERS_S,
    NO_TIER,
    DeadLetter,
    Delivered,
    Permanent,
    Response,
    Retryable,
    RetryLater,
    RetryPolicy,
    Success,
    classify,
    delay_label,
    next_route,
    parse_delay,
    parse_retry_after,
    skip_tier,
    tier_topics,
)

NOW_S = 1_700_000_000.0
NOW_MS = 1_700_000_000_000
# 2023-11-14T22:13:20Z is NOW_S; these are 120 s later in the three HTTP-date forms.
LATER_IMF = "Tue, 14 Nov 2023 22:15:20 GMT"
LATER_RFC850 = "Tuesday, 14-Nov-23 22:15:20 GMT"
LATER_ASCTIME = "Tue Nov 14 22:15:20 2023"

# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(("seconds", "label"), [
    (10, "10s"), (60, "1m"), (600, "10m"), (3600, "1h"), (21600, "6h"),
    (90, "90s"), (86400, "1d"), (1, "1s"), (5400, "90m"), (172800, "2d"),
])
def test_delay_label_round_trips(seconds: int, label: str) -> None:
    assert delay_label(seconds) == label
    assert parse_delay(label) == seconds


@pytest.mark.parametrize("bad", ["", "10", "s", "1.5m", "-1m", "0s", "1w", "1 m", "ten s", "1M"])
def test_parse_delay_rejects_junk(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_delay(bad)


def test_parse_delay_accepts_non_canonical_spelling() -> None:
    assert parse_delay("60s") == 60
    assert parse_delay(" 1h ") == 3600


@pytest.mark.parametrize("bad", [0, -10])
def test_delay_label_rejects_non_positive(bad: int) -> None:
    with pytest.raises(ValueError):
        delay_label(bad)


def test_tier_topics_default() -> None:
    assert tier_topics("", DEFAULT_TIERS_S) == (
        "hookstream.retry.10s", "hookstream.retry.1m", "hookstream.retry.10m",
        "hookstream.retry.1h", "hookstream.retry.6h",
    )
    assert tier_topics("prod.", [90]) == ("prod.hookstream.retry.90s",)


# ---------------------------------------------------------------- classify

S, R, P, G = "success", "retry", "permanent", "gone"

CLASSIFY_TABLE = [
    # status, glpi, default
    (200, S, S),
    (204, S, S),
    (301, S, P),
    (400, R, P),
    (401, R, P),
    (403, R, P),
    (404, R, P),
    (408, R, R),
    (410, G, G),  # Gone is permanent under both rules
    (413, R, P),
    (422, R, P),
    (425, R, R),
    (429, R, R),
    (500, R, R),
    (502, R, R),
    (503, R, R),
    (None, R, R),
]


def _kind(verdict: Success | Retryable | Permanent) -> str:
    match verdict:
        case Success():
            return S
        case Retryable():
            return R
        case Permanent(gone=True):
            return G
        case Permanent():
            return P
    raise AssertionError(verdict)


@pytest.mark.parametrize(("status", "glpi", "default"), CLASSIFY_TABLE)
def test_classify_table(status: int | None, glpi: str, default: str) -> None:
    response = Response(status, error="timeout" if status is None else None)
    assert _kind(classify(RetryPolicy.GLPI, response, NOW_S)) == glpi
    assert _kind(classify(RetryPolicy.DEFAULT, response, NOW_S)) == default


def test_classify_reasons() -> None:
    assert classify(RetryPolicy.DEFAULT, Response(None, "timeout"), NOW_S) == Retryable(
        "no response: timeout", None)
    assert classify(RetryPolicy.DEFAULT, Response(None), NOW_S) == Retryable("no response", None)
    assert classify(RetryPolicy.DEFAULT, Response(404), NOW_S) == Permanent("HTTP 404")
    assert classify(RetryPolicy.DEFAULT, Response(410), NOW_S) == Permanent("HTTP 410", gone=True)
    assert classify(RetryPolicy.DEFAULT, Response(302), NOW_S) == Permanent(
        "HTTP 302: redirect not followed (3xx)")
    assert classify(RetryPolicy.GLPI, Response(404), NOW_S) == Retryable("HTTP 404", None)
    assert classify(RetryPolicy.GLPI, Response(410), NOW_S) == Permanent("HTTP 410", gone=True)


def test_glpis_rule_is_the_default_and_the_other_an_explicit_choice() -> None:
    from hookstream.records import WebhookDefinition

    bare = WebhookDefinition("w", 1, "glpi", "w", "Ticket", "new", "https://x.test/", "enc")
    assert RetryPolicy(bare.retry_policy) is RetryPolicy.GLPI
    assert {p.value for p in RetryPolicy} == {"glpi", "default"}


def test_classify_reads_retry_after_on_retryable_responses() -> None:
    for policy in RetryPolicy:
        assert classify(policy, Response(503, retry_after="120"), NOW_S) == Retryable(
            "HTTP 503", 120.0)
        assert classify(policy, Response(429, retry_after=LATER_IMF), NOW_S) == Retryable(
            "HTTP 429", 120.0)
        assert classify(policy, Response(503, retry_after="soon"), NOW_S) == Retryable(
            "HTTP 503", None)


# ---------------------------------------------------------------- next_route

FAIL = Retryable("HTTP 503", None)


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (0.5, 1.0), (0.999, 1.1996)])
def test_tier_progression_with_jitter(rand: float, factor: float) -> None:
    sent_try = 10  # more retries than tiers: the last tier repeats
    expected_tiers = [0, 1, 2, 3, 4, 4, 4]
    for attempt, tier in enumerate(expected_tiers, start=1):
        route = next_route(attempt, sent_try, FAIL, DEFAULT_TIERS_S, rand, NOW_MS)
        assert isinstance(route, RetryLater)
        assert route.tier == tier
        assert route.delay_s == pytest.approx(DEFAULT_TIERS_S[tier] * factor)
        assert route.not_before_ms == NOW_MS + round(DEFAULT_TIERS_S[tier] * factor * 1000)


def test_jitter_bounds_are_exact() -> None:
    low = next_route(1, 3, FAIL, DEFAULT_TIERS_S, 0.0, NOW_MS)
    mid = next_route(1, 3, FAIL, DEFAULT_TIERS_S, 0.5, NOW_MS)
    high = next_route(1, 3, FAIL, DEFAULT_TIERS_S, 0.999, NOW_MS)
    assert low == RetryLater(0, 8.0, NOW_MS + 8000)
    assert mid == RetryLater(0, 10.0, NOW_MS + 10_000)
    assert isinstance(high, RetryLater)
    assert high.not_before_ms == NOW_MS + 11_996
    assert 8.0 <= high.delay_s < 12.0


@pytest.mark.parametrize("rand", [-0.1, 1.0, 1.5])
def test_rand_outside_unit_interval_is_refused(rand: float) -> None:
    with pytest.raises(ValueError):
        next_route(1, 3, FAIL, DEFAULT_TIERS_S, rand, NOW_MS)


def test_sent_try_zero_allows_one_attempt_only() -> None:
    assert next_route(1, 0, FAIL, DEFAULT_TIERS_S, 0.5, NOW_MS) == DeadLetter(
        "retries exhausted after 1 attempt(s): HTTP 503")


def test_dead_letter_after_sent_try_plus_one_attempts() -> None:
    sent_try = 3
    for attempt in range(1, sent_try + 1):
        assert isinstance(next_route(attempt, sent_try, FAIL, DEFAULT_TIERS_S, 0.5, NOW_MS),
                          RetryLater)
    assert next_route(sent_try + 1, sent_try, FAIL, DEFAULT_TIERS_S, 0.5, NOW_MS) == DeadLetter(
        "retries exhausted after 4 attempt(s): HTTP 503")


def test_success_and_permanent_ignore_remaining_attempts() -> None:
    assert next_route(1, 5, Success(), DEFAULT_TIERS_S, 0.5, NOW_MS) == Delivered()
    assert next_route(6, 5, Success(), DEFAULT_TIERS_S, 0.5, NOW_MS) == Delivered()
    assert next_route(1, 5, Permanent("HTTP 404"), DEFAULT_TIERS_S, 0.5, NOW_MS) == DeadLetter(
        "HTTP 404")


def test_custom_tiers() -> None:
    tiers = (5, 30)
    routes = [next_route(n, 5, FAIL, tiers, 0.5, NOW_MS) for n in (1, 2, 3)]
    assert routes == [RetryLater(0, 5.0, NOW_MS + 5000), RetryLater(1, 30.0, NOW_MS + 30_000),
                      RetryLater(1, 30.0, NOW_MS + 30_000)]


@pytest.mark.parametrize(("hint_s", "delay_s"), [
    (1.0, 60.0),      # below the tier delay: the tier delay
    (0.0, 60.0),
    (60.0, 60.0),
    (90.0, 90.0),     # within bounds: honoured exactly, no jitter
    (120.0, 120.0),
    (500.0, 120.0),   # above twice the tier delay: twice the tier delay
])
def test_retry_after_is_clamped_to_tier_bounds(hint_s: float, delay_s: float) -> None:
    verdict = Retryable("HTTP 429", hint_s)
    for rand in (0.0, 0.999):
        route = next_route(2, 5, verdict, DEFAULT_TIERS_S, rand, NOW_MS)  # tier 1 = 60 s
        assert route == RetryLater(1, delay_s, NOW_MS + int(delay_s * 1000))


def test_retry_after_http_date_end_to_end() -> None:
    verdict = classify(RetryPolicy.DEFAULT, Response(503, retry_after=LATER_IMF), NOW_S)
    assert next_route(2, 5, verdict, DEFAULT_TIERS_S, 0.0, NOW_MS) == RetryLater(
        1, 120.0, NOW_MS + 120_000)


def test_garbage_retry_after_falls_back_to_jittered_tier() -> None:
    verdict = classify(RetryPolicy.DEFAULT, Response(503, retry_after="tomorrow"), NOW_S)
    assert next_route(2, 5, verdict, DEFAULT_TIERS_S, 0.0, NOW_MS) == RetryLater(
        1, 48.0, NOW_MS + 48_000)


@pytest.mark.parametrize(("attempt", "sent_try", "tiers"), [
    (0, 3, DEFAULT_TIERS_S), (1, -1, DEFAULT_TIERS_S), (1, 3, ()), (1, 3, (10, 0)),
])
def test_next_route_refuses_bad_arguments(attempt: int, sent_try: int,
                                          tiers: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        next_route(attempt, sent_try, FAIL, tiers, 0.5, NOW_MS)


# ---------------------------------------------------------------- parse_retry_after


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    (" 0 ", 0.0),
    (LATER_IMF, 120.0),
    (LATER_RFC850, 120.0),
    (LATER_ASCTIME, 120.0),
    ("Tue, 14 Nov 2023 22:13:20 GMT", 0.0),
    ("Tue, 14 Nov 2023 22:13:19 GMT", None),   # in the past
    ("-5", None),
    ("1.5", None),
    ("", None),
    ("soon", None),
    ("٣", None),                               # a digit, but not an ASCII one
])
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW_S) == expected


# ---------------------------------------------------------------- skip_tier


def test_skip_tier_moves_to_next_tier() -> None:
    assert skip_tier(NO_TIER, DEFAULT_TIERS_S, 0.5, NOW_MS) == RetryLater(0, 10.0, NOW_MS + 10_000)
    assert skip_tier(0, DEFAULT_TIERS_S, 0.5, NOW_MS) == RetryLater(1, 60.0, NOW_MS + 60_000)
    assert skip_tier(2, DEFAULT_TIERS_S, 0.0, NOW_MS) == RetryLater(
        3, 2880.0, NOW_MS + 2_880_000)


def test_skip_tier_stays_on_last_tier() -> None:
    assert skip_tier(4, DEFAULT_TIERS_S, 0.5, NOW_MS) == RetryLater(
        4, 21600.0, NOW_MS + 21_600_000)
    assert skip_tier(9, DEFAULT_TIERS_S, 0.5, NOW_MS).tier == 4


def test_skip_tier_refuses_bad_tier() -> None:
    with pytest.raises(ValueError):
        skip_tier(-2, DEFAULT_TIERS_S, 0.5, NOW_MS)


def test_decisive_says_whether_the_two_policies_judge_a_status_apart() -> None:
    from hookstream.policy.retry import Response, classify, decisive

    for status in [None, *range(100, 700)]:
        response = Response(status, None, None)
        apart = len({type(classify(p, response, 0.0)) for p in RetryPolicy}) > 1
        assert decisive(response, 0.0) is apart, status
    assert decisive(Response(302, None, None), 0.0)
    assert not decisive(Response(200, None, None), 0.0)
