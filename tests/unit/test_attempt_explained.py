"""The request as shown (redaction), the decision sentences, and the timeline: pure."""

from __future__ import annotations

import hashlib

import pytest

from connectors.console.timeline import requests_sent, timeline, trigger_text
from hookstream.policy import Cause, Observed, RetryPolicy, decide, explain
from hookstream.policy.redact import redact_headers, redact_value
from hookstream.records import DeliveryRequest, Trigger

TOKEN = "eyJhbGciOiJIUzI1NiJ9.abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize("name, value, shown", [
    ("Authorization", f"Bearer {TOKEN}", f"Bearer ••••({len(TOKEN)} chars)"),
    ("authorization", "Basic dXNlcjpwdw==", "Basic ••••(12 chars)"),
    ("Authorization", "raw-key", "••••(7 chars)"),
    ("X-Api-Key", "k3y", "••••(3 chars)"),
    ("X-Auth-Token", "t0k", "••••(3 chars)"),
    ("X-Client-Secret", "s3cr3t", "••••(6 chars)"),
    ("Cookie", "session=abc; theme=dark", "session=••••(3 chars); theme=••••(4 chars)"),
    # signatures prove the body, they open nothing: shown so a receiver can be checked
    ("X-GLPI-signature", "ab" * 32, "ab" * 32),
    ("X-GLPI-timestamp", "1700000000", "1700000000"),
    ("webhook-id", "d1", "d1"),
    ("webhook-timestamp", "1700000000", "1700000000"),
    ("webhook-signature", "v1,abc=", "v1,abc="),
    ("Content-Type", "application/json", "application/json"),
    ("Host", "127.0.0.1:8080", "127.0.0.1:8080"),
])
def test_credentials_masked_keeping_their_format(name: str, value: str, shown: str) -> None:
    assert redact_value(name, value) == shown
    assert redact_value(name, shown) == shown  # idempotent: masking twice keeps the count


def test_no_secret_survives_redaction() -> None:
    out = redact_headers({"Authorization": f"Bearer {TOKEN}", "Cookie": "sid=hunter2"})
    assert TOKEN not in repr(out) and "hunter2" not in repr(out)


REQUEST = DeliveryRequest(
    delivery_id="d1", webhook_id="w1", instance="glpi", event_id="e1", itemtype="Ticket",
    items_id=7, event="new", method="post", url="https://x/h", body=b'{"a": 1}',
    created_at=0)
NOW = 1_000_000
SENT = {"X-GLPI-signature": "ab", "Authorization": "Bearer ••••(3 chars)"}


def seen(**kw: object) -> Observed:
    return Observed(NOW - 30, NOW, request_headers=SENT, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("observed, copy, policy, sentence", [
    (seen(status=200), REQUEST, RetryPolicy.DEFAULT, "HTTP 200: delivered."),
    (seen(status=500), REQUEST, RetryPolicy.DEFAULT,
     "HTTP 500: retried on the 10 s tier (attempt 1 of 4)."),
    (seen(error="timeout after 5s"), REQUEST.evolve(attempt=1), RetryPolicy.DEFAULT,
     "no answer: timeout after 5s: retried on the 1 m tier (attempt 2 of 4)."),
    (seen(status=401), REQUEST, RetryPolicy.DEFAULT,
     "HTTP 401: not retried under this webhook's retry policy (default: only no answer, "
     "408, 425, 429 and 5xx are retried); dead-lettered."),
    (seen(status=500), REQUEST.evolve(attempt=3), RetryPolicy.DEFAULT,
     "HTTP 500: dead-lettered, retries exhausted after 4 attempt(s) (sent_try 3 allows 4)."),
    (Observed(NOW, NOW, circuit_open=True, error="circuit open"), REQUEST,
     RetryPolicy.DEFAULT, "circuit open: moved to the 10 s tier without a request."),
    (Observed(NOW, NOW, circuit_open=True, error="circuit open"),
     REQUEST.evolve(retry_tier=0), RetryPolicy.DEFAULT,
     "circuit open: moved to the 10 s tier without a request."),
    (seen(blocked=True, error="blocked: loopback"), REQUEST, RetryPolicy.DEFAULT,
     "blocked by the SSRF guard: dead-lettered (blocked: loopback)."),
    # GLPI's rule, named where the two policies part: a 4xx retried, a 3xx delivered
    (seen(status=401), REQUEST, RetryPolicy.GLPI,
     "HTTP 401: retried on the 10 s tier (attempt 1 of 4) under this webhook's retry policy "
     "(GLPI's: any status of 400 and above but 410, or no answer, is retried)."),
    (seen(status=302), REQUEST, RetryPolicy.GLPI,
     "HTTP 302: delivered under this webhook's retry policy (GLPI's: any status below 400 "
     "is a success; redirects are not followed)."),
    (seen(status=500), REQUEST, RetryPolicy.GLPI,
     "HTTP 500: retried on the 10 s tier (attempt 1 of 4)."),
    (seen(status=429), REQUEST, RetryPolicy.GLPI,
     "HTTP 429: retried on the 10 s tier (attempt 1 of 4)."),
    (seen(status=200), REQUEST, RetryPolicy.GLPI, "HTTP 200: delivered."),
    (seen(status=410), REQUEST, RetryPolicy.GLPI,
     "HTTP 410: not retried under this webhook's retry policy (GLPI's: any status of 400 and "
     "above but 410, or no answer, is retried); dead-lettered."),
    (seen(status=403), REQUEST.evolve(attempt=3), RetryPolicy.GLPI,
     "HTTP 403: dead-lettered, retries exhausted after 4 attempt(s) (sent_try 3 allows 4)."),
])
def test_decision_sentences(observed: Observed, copy: DeliveryRequest,
                            policy: RetryPolicy, sentence: str) -> None:
    decision = decide(copy, observed, policy, 3, (10, 60, 600), -1, 0.5)
    assert decision.attempt.next_step == sentence


def test_circuit_open_from_the_first_tier_moves_to_the_second() -> None:
    decision = decide(REQUEST, Observed(NOW, NOW, circuit_open=True), RetryPolicy.DEFAULT, 3,
                      (10, 60, 600), 0, 0.5)
    assert decision.attempt.next_step == "circuit open: moved to the 1 m tier without a request."


def test_the_attempt_record_carries_the_request_sent_and_its_cause() -> None:
    decision = decide(REQUEST, seen(status=401), RetryPolicy.DEFAULT, 3, (10,), -1, 0.5,
                      cause=Cause(Trigger.RETRY, "10s"))
    a = decision.attempt
    assert (a.trigger, a.trigger_tier, a.request_method, a.request_url) == (
        "retry", "10s", "POST", "https://x/h")
    assert a.request_headers == SENT
    assert a.body_sha256 == hashlib.sha256(b'{"a": 1}').hexdigest()
    # the reason `hookstream dlq list` shows is on the attempt too: it reaches the console
    assert decision.forward is not None and a.reason == decision.forward.request.last_error
    assert a.reason == "HTTP 401"
    skipped = decide(REQUEST, Observed(NOW, NOW, circuit_open=True), RetryPolicy.DEFAULT, 3,
                     (10,), -1, 0.5).attempt
    assert skipped.request_method is None and skipped.body_sha256 is None


def test_manual_and_tier_names() -> None:
    assert explain.tier_name(21600) == "6 h" and explain.tier_name(90) == "90 s"
    assert explain.manual(False, 500, None) == (
        "manual send failed (HTTP 500): the delivery's route is unchanged.")


def attempt(outcome: str, trigger: str = "", **kw: object) -> dict[str, object]:
    return {"outcome": outcome, "trigger": trigger, "started_at": 0, "duration_ms": 1, **kw}


def test_timeline_numbers_requests_and_collapses_circuit_skips() -> None:
    log = [
        attempt("retry_scheduled", "first", status_code=500),
        attempt("circuit_open", "retry", trigger_tier="10s"),
        attempt("circuit_open", "retry", trigger_tier="1m"),
        attempt("circuit_open", "retry", trigger_tier="10m",
                next_step="circuit open: moved to the 10 m tier without a request."),
        attempt("dead_lettered", "probe", trigger_tier="10m", status_code=500),
        attempt("circuit_open", "redrive"),
        attempt("delivered", "redrive", status_code=200),
        attempt("failed", "manual", actor="ops", status_code=503),
    ]
    entries = timeline(log)
    assert [(e.number, e.outcome, e.count) for e in entries] == [
        (1, "retry_scheduled", 1), (None, "circuit_open", 3), (2, "dead_lettered", 1),
        (None, "circuit_open", 1), (3, "delivered", 1), (4, "failed", 1)]
    assert entries[1].sentence == "circuit open: moved to the 10 m tier without a request."
    assert [e.trigger for e in entries] == [
        "first send", "retry (10s tier)", "circuit probe (10m tier)", "redrive", "redrive",
        "manual send by ops"]
    assert requests_sent(log) == 4  # the queue's "Attempts" column: the last number
    assert trigger_text(attempt("delivered")) == "not recorded"


def test_timeline_names_the_retry_policy_that_judged_each_answer() -> None:
    entries = timeline([
        attempt("retry_scheduled", "first", status_code=401, retry_policy="glpi"),
        attempt("circuit_open", "retry", trigger_tier="10s"),  # no answer to judge
        attempt("dead_lettered", "retry", status_code=410, retry_policy="default"),
        attempt("delivered", "redrive", status_code=200),  # logged before v4: none named
    ])
    assert [e.policy for e in entries] == [
        "GLPI's retry policy", None, "the default retry policy", None]
