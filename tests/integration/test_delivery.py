"""Delivery on a real broker with real HTTP receivers on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from hookstream.config import Settings
from hookstream.records import ATTEMPTS, DLQ, AttemptRecord, DeliveryRequest
from tests.integration.harness import (
    RunningDelivery,
    apply_webhooks,
    publish,
    read,
    request_for,
    wait_until,
)
from tests.receiver import Receiver

LOOPBACK = ["127.0.0.0/8"]
SECRET = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tAbCd"  # 40 chars, as GLPI generates


def attempts(settings: Settings, delivery_id: str) -> list[AttemptRecord]:
    return read(settings, ATTEMPTS, AttemptRecord, lambda a: a.delivery_id == delivery_id)


def judged_by(settings: Settings, requests: list[DeliveryRequest]) -> dict[str, str | None]:
    """The retry policy named by each delivery's attempts; empty until every one has one."""
    found = {a.delivery_id: a.retry_policy for a in read(settings, ATTEMPTS, AttemptRecord)}
    return found if all(r.delivery_id in found for r in requests) else {}


def test_glpi_and_standard_signatures_verify(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        apply_webhooks(
            settings,
            tmp_path,
            {
                "id": "signed",
                "url": receiver.url("/in"),
                "secret": SECRET,
                "signature_scheme": "both",
                "allowed_networks": LOOPBACK,
            },
        )
        request = request_for("signed", receiver.url("/in"), body='{"é": "/"}'.encode())
        publish(settings, [request])
        with RunningDelivery(settings):
            [got] = receiver.wait_for(1, "/in")
            records = wait_until(lambda: attempts(settings, request.delivery_id))
    ts = got.headers["x-glpi-timestamp"]
    expected = hmac.new(SECRET.encode(), got.body + ts.encode(), hashlib.sha256).hexdigest()
    assert got.headers["x-glpi-signature"] == expected
    assert got.body == request.body
    Webhook("whsec_" + __import__("base64").b64encode(SECRET.encode()).decode()).verify(
        got.body, {k: v for k, v in got.headers.items() if k.startswith("webhook-")}
    )
    assert got.headers["webhook-id"] == request.delivery_id
    assert [r.outcome for r in records] == ["delivered"]
    assert records[0].status_code == 200 and records[0].attempt == 1


def test_retries_keep_the_delivery_id_and_land_on_time(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.on("/flaky", statuses=[503, 500, 200])
        apply_webhooks(
            settings,
            tmp_path,
            {
                "id": "flaky",
                "url": receiver.url("/flaky"),
                "signature_scheme": "standard",
                "allowed_networks": LOOPBACK,
            },
        )
        request = request_for("flaky", receiver.url("/flaky"))
        publish(settings, [request])
        with RunningDelivery(settings):
            got = receiver.wait_for(3, "/flaky", timeout_s=30)
            records = wait_until(
                lambda: [
                    a for a in attempts(settings, request.delivery_id) if a.outcome == "delivered"
                ]
            )
        retries = read(settings, "hookstream.retry.1s", DeliveryRequest) + read(
            settings, "hookstream.retry.2s", DeliveryRequest
        )
    assert len(got) == 3 and records
    assert {r.headers["webhook-id"] for r in got} == {request.delivery_id}
    assert sorted(r.attempt for r in retries) == [1, 2]
    for retry in retries:  # the n-th retry arrives after its not_before, within 1 s
        arrival = got[retry.attempt].at
        assert retry.not_before / 1000 - 0.05 <= arrival <= retry.not_before / 1000 + 1.0
    outcomes = [
        a.outcome for a in sorted(attempts(settings, request.delivery_id), key=lambda a: a.attempt)
    ]
    assert outcomes == ["retry_scheduled", "retry_scheduled", "delivered"]


def test_exhausted_and_permanent_failures_go_to_the_dlq(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.on("/down", statuses=[503])
        receiver.on("/missing", statuses=[404])
        receiver.on("/glpi-missing", statuses=[404, 200])
        receiver.on("/gone", statuses=[410])
        apply_webhooks(
            settings,
            tmp_path,
            {
                "id": "down",
                "url": receiver.url("/down"),
                "sent_try": 1,
                "allowed_networks": LOOPBACK,
            },
            {
                "id": "missing",
                "url": receiver.url("/missing"),
                "retry_policy": "default",
                "allowed_networks": LOOPBACK,
            },
            # no retry_policy: GLPI's rule, the default
            {"id": "glpi-missing", "url": receiver.url("/glpi-missing"),
             "allowed_networks": LOOPBACK},
            {"id": "gone", "url": receiver.url("/gone"), "allowed_networks": LOOPBACK},
        )
        down, missing, glpi, gone = (
            request_for("down", receiver.url("/down"), 1),
            request_for("missing", receiver.url("/missing"), 2),
            request_for("glpi-missing", receiver.url("/glpi-missing"), 3),
            request_for("gone", receiver.url("/gone"), 4),
        )
        publish(settings, [down, missing, glpi, gone])
        with RunningDelivery(settings):
            dead = wait_until(
                lambda: (
                    len(read(settings, DLQ, DeliveryRequest)) >= 3
                    and read(settings, DLQ, DeliveryRequest)
                ),
                timeout_s=30,
            )
            receiver.wait_for(2, "/glpi-missing")
            wait_until(
                lambda: [
                    a for a in attempts(settings, glpi.delivery_id) if a.outcome == "delivered"
                ]
            )
            judged = wait_until(lambda: judged_by(settings, [missing, glpi, gone, down]))
    by_webhook = {d.webhook_id: d for d in dead}
    assert set(by_webhook) == {"down", "missing", "gone"}
    assert by_webhook["down"].attempt == 2 and "retries exhausted" in (
        by_webhook["down"].last_error or ""
    )
    assert by_webhook["missing"].attempt == 1 and by_webhook["missing"].last_status == 404
    # 410 Gone: permanent under GLPI's rule too
    assert by_webhook["gone"].attempt == 1 and by_webhook["gone"].last_status == 410
    assert len(receiver.requests("/down")) == 2 and len(receiver.requests("/missing")) == 1
    assert len(receiver.requests("/glpi-missing")) == 2  # GLPI's policy retries a 404
    assert len(receiver.requests("/gone")) == 1
    # each attempt names the rule that judged it
    assert (judged[missing.delivery_id], judged[glpi.delivery_id],
            judged[gone.delivery_id], judged[down.delivery_id]) == (
        "default", "glpi", "glpi", "glpi")


def test_ssrf_guard_blocks_loopback_without_allow_list(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        apply_webhooks(
            settings,
            tmp_path,
            {"id": "named", "url": "http://localhost:1/x"},
            {"id": "spelled", "url": "https://hooks.example.com/x"},
        )
        named = request_for("named", receiver.url("/x").replace("127.0.0.1", "localhost"), 1)
        spelled = request_for("spelled", f"http://2130706433:{receiver.port}/x", 2)
        publish(settings, [named, spelled])
        with RunningDelivery(settings):
            dead = wait_until(
                lambda: (
                    len(read(settings, DLQ, DeliveryRequest)) >= 2
                    and read(settings, DLQ, DeliveryRequest)
                )
            )
        assert receiver.requests() == []
    assert {d.webhook_id for d in dead} == {"named", "spelled"}
    assert all("blocked" in (d.last_error or "") for d in dead)
    outcomes = {a.outcome for a in read(settings, ATTEMPTS, AttemptRecord)}
    assert outcomes == {"blocked"}


def test_cra_challenge_passes_once_and_is_cached(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.on("/cra", cra_secret=SECRET)
        receiver.on("/cra-wrong", cra_secret=SECRET, cra_wrong=True)
        apply_webhooks(
            settings,
            tmp_path,
            {
                "id": "cra",
                "url": receiver.url("/cra"),
                "secret": SECRET,
                "use_cra_challenge": True,
                "allowed_networks": LOOPBACK,
            },
            {
                "id": "cra-wrong",
                "url": receiver.url("/cra-wrong"),
                "secret": SECRET,
                "use_cra_challenge": True,
                "allowed_networks": LOOPBACK,
            },
        )
        good = [request_for("cra", receiver.url("/cra"), n) for n in range(3)]
        wrong = request_for("cra-wrong", receiver.url("/cra-wrong"), 9)
        publish(settings, [good[0]])
        with RunningDelivery(settings):
            receiver.wait_for(1, "/cra")
            publish(settings, [*good[1:], wrong])
            receiver.wait_for(3, "/cra")
            failed = wait_until(lambda: attempts(settings, wrong.delivery_id))
        challenges = [r for r in receiver.requests("/cra", with_cra=True) if r.query]
    assert len(challenges) == 1 and challenges[0].method == "GET"
    token = hmac.new(SECRET.encode(), b"validate_cra_challenge", hashlib.sha256).hexdigest()
    assert challenges[0].query == {"crc_token": [token]}
    assert "x-glpi-signature" not in challenges[0].headers
    assert failed[0].outcome == "challenge_failed" and failed[0].attempt == 0  # none spent
    assert receiver.requests("/cra-wrong") == []
    retry = read(
        settings,
        "hookstream.retry.1s",
        DeliveryRequest,
        lambda r: r.delivery_id == wrong.delivery_id,
    )
    assert retry and retry[0].attempt == 0


def test_no_secret_in_records_or_errors(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.on("/leak", statuses=[500])
        apply_webhooks(
            settings,
            tmp_path,
            {
                "id": "leak",
                "url": receiver.url("/leak"),
                "secret": SECRET,
                "sent_try": 0,
                "save_response_body": True,
                "allowed_networks": LOOPBACK,
            },
        )
        request = request_for("leak", receiver.url("/leak"))
        publish(settings, [request])
        with RunningDelivery(settings):
            wait_until(lambda: read(settings, DLQ, DeliveryRequest))
    for topic in (ATTEMPTS, DLQ, "hookstream.deliveries", "glpi.item-changes"):
        for msg in __import__("hookstream.io.kafka", fromlist=["read_all"]).read_all(
            settings, settings.topic(topic), timeout_s=5
        ):
            assert SECRET.encode() not in (msg.value() or b"")
    [attempt] = attempts(settings, request.delivery_id)
    assert attempt.response_body == b'{"ok": true}'
    assert SECRET not in json.dumps(attempt.to_dict(), default=str)


def test_webhook_rate_limit_spaces_requests(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        apply_webhooks(settings, tmp_path, {"id": "paced", "url": receiver.url("/paced"),
                                            "rate_limit_per_s": 5, "max_in_flight": 1,
                                            "allowed_networks": LOOPBACK})
        publish(settings, [request_for("paced", receiver.url("/paced"), n) for n in range(10)])
        with RunningDelivery(settings):
            got = receiver.wait_for(10, "/paced")
    arrivals = sorted(r.at for r in got)
    assert len(arrivals) == 10
    assert arrivals[-1] - arrivals[0] >= 9 / 5 - 0.15  # one send per 1/5 s slot


def test_redirects_are_not_followed(settings: Settings, tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.on("/moved", statuses=[302], headers={"Location": receiver.url("/elsewhere")})
        # the default policy: a 3xx is a failure (GLPI's counts any status below 400)
        apply_webhooks(settings, tmp_path, {"id": "moved", "url": receiver.url("/moved"),
                                            "retry_policy": "default",
                                            "allowed_networks": LOOPBACK})
        request = request_for("moved", receiver.url("/moved"))
        publish(settings, [request])
        with RunningDelivery(settings):
            [dead] = wait_until(lambda: read(settings, DLQ, DeliveryRequest))
        assert receiver.requests("/elsewhere") == []
    assert dead.last_status == 302 and "redirect" in (dead.last_error or "")


def test_a_receivers_cookie_is_never_sent_back(settings: Settings, tmp_path: Path) -> None:
    """Deliveries share one HTTP session: a cookie set by one answer must not ride along on
    later deliveries (to this webhook or another of the host), as GLPI keeps none."""
    with Receiver() as receiver:
        receiver.on("/a", headers={"Set-Cookie": "sid=from-a; Path=/"})
        receiver.on("/b")
        # a host name: a cookie jar keeps no cookie of an IP address anyway
        a, b = (receiver.url(p).replace("127.0.0.1", "localhost") for p in ("/a", "/b"))
        apply_webhooks(settings, tmp_path,
                       {"id": "a", "url": a, "allowed_networks": LOOPBACK},
                       {"id": "b", "url": b, "allowed_networks": LOOPBACK})
        publish(settings, [request_for("a", a, 0)])
        with RunningDelivery(settings):
            wait_until(lambda: receiver.requests("/a"))
            publish(settings, [request_for("a", a, 1), request_for("b", b, 2)])
            wait_until(lambda: len(receiver.requests("/a")) == 2 and receiver.requests("/b"))
        received = receiver.requests("/a") + receiver.requests("/b")
    assert len(received) == 3
    assert all("cookie" not in r.headers for r in received)
