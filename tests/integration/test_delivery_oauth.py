"""OAuth2 client credentials against a real Authlib token endpoint on loopback.

The receiver accepts only bearer tokens that the token endpoint issued and that are
still valid (not expired, not revoked); anything else gets 401.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hookstream.config import Settings
from hookstream.io import read_all
from hookstream.records import ATTEMPTS, DELIVERIES, DLQ, AttemptRecord, DeliveryRequest
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    attempts_of,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.oauth_server import OAuthServer
from tests.receiver import Received, Receiver

LOOPBACK = ["127.0.0.0/8"]
CLIENT_ID = "hookstream"
CLIENT_SECRET = "oauth-client-secret-0123456789abcdef"
WRONG_SECRET = "not-the-client-secret-9876543210"


def oauth_webhook(webhook_id: str, url: str, oauth: OAuthServer, **extra: Any) -> dict[str, Any]:
    return {
        "id": webhook_id,
        "url": url,
        "signature_scheme": "standard",  # webhook-id header = delivery id
        "use_oauth": True,
        "oauth_url": oauth.url,
        "clientid": CLIENT_ID,
        "clientsecret": CLIENT_SECRET,
        "allowed_networks": LOOPBACK,
        **extra,
    }


def delivered(settings: Settings, requests: list[DeliveryRequest]) -> list[AttemptRecord] | None:
    """The delivered attempts of `requests` once every one of them is delivered."""
    ids = {r.delivery_id for r in requests}
    done = read(
        settings,
        ATTEMPTS,
        AttemptRecord,
        lambda a: a.delivery_id in ids and a.outcome == "delivered",
    )
    return done if {a.delivery_id for a in done} == ids else None


def for_delivery(received: list[Received], delivery_id: str) -> list[Received]:
    return [r for r in received if r.headers.get("webhook-id") == delivery_id]


def bearer(got: Received) -> str:
    scheme, _, token = got.headers.get("authorization", "").partition(" ")
    assert scheme == "Bearer", got.headers.get("authorization")
    return token


def test_one_token_for_many_deliveries_replaces_custom_authorization(
    settings: Settings, tmp_path: Path
) -> None:
    with OAuthServer({CLIENT_ID: CLIENT_SECRET}) as oauth, Receiver() as receiver:
        receiver.on("/api", authorize=oauth.authorized)
        apply_webhooks(settings, tmp_path, oauth_webhook("oauth", receiver.url("/api"), oauth))
        requests = [
            request_for("oauth", receiver.url("/api"), n, body=b'{"n": %d}' % n).evolve(
                headers={"Content-Type": "application/json", "Authorization": "Basic Y3VzdG9t"}
            )
            for n in range(30)
        ]
        publish(settings, requests)
        with RunningDelivery(settings):
            done = wait_until(lambda: delivered(settings, requests), timeout_s=30)
        got = receiver.requests("/api")
    assert done is not None, "not every delivery was delivered"
    assert oauth.token_requests == 1  # concurrent deliveries share one cached token
    [token] = oauth.issued()
    assert len(got) == len(requests)  # no 401 round trip
    assert {r.headers["webhook-id"] for r in got} == {r.delivery_id for r in requests}
    for r in got:  # the custom Authorization header is replaced, not doubled
        assert r.headers["authorization"] == f"Bearer {token}"
    assert sorted(a.attempt for a in done) == [1] * len(requests)
    assert {a.status_code for a in done} == {200}
    for a in done:  # the request as sent, on the record: the token masked, signatures kept
        assert a.request_headers["Authorization"] == f"Bearer ••••({len(token)} chars)"
        assert a.request_headers["webhook-id"] == a.delivery_id
        assert token not in repr(a)


def test_token_refreshed_once_on_401(settings: Settings, tmp_path: Path) -> None:
    with OAuthServer({CLIENT_ID: CLIENT_SECRET}) as oauth, Receiver() as receiver:
        receiver.on("/api", authorize=oauth.authorized)
        apply_webhooks(settings, tmp_path, oauth_webhook("oauth", receiver.url("/api"), oauth))
        first = [request_for("oauth", receiver.url("/api"), n) for n in range(3)]
        after = request_for("oauth", receiver.url("/api"), 10)
        later = [request_for("oauth", receiver.url("/api"), n) for n in range(20, 23)]
        publish(settings, first)
        with RunningDelivery(settings):
            assert wait_until(lambda: delivered(settings, first))
            [old] = oauth.issued()
            oauth.revoke_all()  # the receiver now answers 401 to the cached token
            publish(settings, [after])
            [after_done] = wait_until(lambda: delivered(settings, [after])) or [None]
            publish(settings, later)
            assert wait_until(lambda: delivered(settings, later))
        got = receiver.requests("/api")
    assert after_done is not None
    assert oauth.token_requests == 2
    [_, new] = oauth.issued()
    sent = for_delivery(got, after.delivery_id)
    assert [bearer(r) for r in sent] == [old, new]  # 401, new token, one resend
    assert after_done.attempt == 1 and after_done.status_code == 200  # one attempt spent
    assert [a.outcome for a in attempts_of(settings, "oauth")].count("retry_scheduled") == 0
    for request in later:  # the new token is cached in turn
        assert [bearer(r) for r in for_delivery(got, request.delivery_id)] == [new]


def test_expiring_token_is_renewed_before_it_expires(settings: Settings, tmp_path: Path) -> None:
    with OAuthServer({CLIENT_ID: CLIENT_SECRET}, expires_in=2) as oauth, Receiver() as receiver:
        receiver.on("/api", authorize=oauth.authorized)
        apply_webhooks(settings, tmp_path, oauth_webhook("oauth", receiver.url("/api"), oauth))
        one, two = (request_for("oauth", receiver.url("/api"), n) for n in (1, 2))
        publish(settings, [one])
        with RunningDelivery(settings):
            assert wait_until(lambda: delivered(settings, [one]))
            [first] = oauth.issued()
            assert wait_until(lambda: not oauth.valid(first), timeout_s=10)  # expired now
            publish(settings, [two])
            assert wait_until(lambda: delivered(settings, [two]))
        got = receiver.requests("/api")
    assert oauth.token_requests == 2
    [_, second] = oauth.issued()
    assert second != first
    # Renewed from expires_in, not after a 401: one request, carrying the new token.
    assert [bearer(r) for r in for_delivery(got, two.delivery_id)] == [second]
    assert [bearer(r) for r in for_delivery(got, one.delivery_id)] == [first]


def test_failing_token_endpoint_fails_the_attempt_without_leaking(
    settings: Settings, tmp_path: Path
) -> None:
    other_secret = "other-client-secret-abcdef0123456789"
    clients = {CLIENT_ID: CLIENT_SECRET, "other": other_secret}
    with OAuthServer(clients) as oauth, Receiver() as receiver:
        receiver.on("/bad", authorize=oauth.authorized)
        receiver.on("/good", authorize=oauth.authorized)
        apply_webhooks(
            settings,
            tmp_path,
            oauth_webhook(
                "bad",
                receiver.url("/bad"),
                oauth,
                clientsecret=WRONG_SECRET,
                save_response_body=True,
            ),
            oauth_webhook(
                "good",
                receiver.url("/good"),
                oauth,
                clientid="other",
                clientsecret=other_secret,
                save_response_body=True,
            ),
        )
        bad = request_for("bad", receiver.url("/bad"), 1)
        good = request_for("good", receiver.url("/good"), 2)
        publish(settings, [bad, good])
        with RunningDelivery(settings):
            failed = wait_until(lambda: attempts_of(settings, "bad"))
            assert wait_until(lambda: delivered(settings, [good]))
        tokens = oauth.issued()
    assert receiver.requests("/bad") == []  # nothing sent without a token
    assert len(receiver.requests("/good")) == 1
    first = min(failed, key=lambda a: a.started_at)
    assert first.outcome == "retry_scheduled" and first.attempt == 1
    assert first.status_code is None and "oauth" in (first.error or "").lower()
    assert len(tokens) == 1 and oauth.token_requests >= 2  # good once, bad at least once
    retry = read(settings, "hookstream.retry.1s", DeliveryRequest, lambda r: r.webhook_id == "bad")
    assert retry and retry[0].attempt == 1
    secrets = [CLIENT_SECRET, WRONG_SECRET, other_secret, *tokens]
    for record in failed:
        text = json.dumps(record.to_dict(), default=str)
        assert not [s for s in secrets if s in text]
    topics = [ATTEMPTS, DLQ, DELIVERIES, *(f"hookstream.retry.{t}" for t in settings.retry_tiers)]
    for topic in topics:
        for msg in read_all(settings, settings.topic(topic), timeout_s=5):
            value = msg.value() or b""
            assert not [s for s in secrets if s.encode() in value], topic
