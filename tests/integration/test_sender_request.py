"""The sender against a real local receiver: the headers it reports are those the
receiver got, signatures and client-added headers included, credentials masked."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp

from connectors.delivery.http import HttpResult, Sender, Target
from hookstream.policy import RetryPolicy
from hookstream.records import DeliveryRequest, delivery_id_for
from tests.receiver import Receiver

SECRET = "s3cret-of-the-webhook"
BODY = b'{\n    "item": {\n        "id": 1\n    },\n    "event": "new"\n}'


def target(save: bool) -> Target:
    return Target("w", 1, SECRET, "both", 5.0, RetryPolicy.DEFAULT, 3, (10,), False, False,
                  "", "", "", save, ())


def send(url: str, save: bool) -> HttpResult:
    request = DeliveryRequest(
        delivery_id_for("e1", "w"), "w", "glpi", "e1", "Ticket", 1, "new", "POST", url, BODY,
        0, headers={"Authorization": "Bearer abcdef", "X-Custom": "plain"})

    async def go() -> HttpResult:
        async with aiohttp.ClientSession() as session:
            return await Sender(session, lambda: 1_700_000_000.0).send(request, target(save))

    return asyncio.run(go())


def test_the_reported_headers_are_those_received() -> None:
    with Receiver() as receiver:
        receiver.on("/h", statuses=[401])
        result = send(receiver.url("/h"), save=True)
        [got] = receiver.requests("/h")
    sent = {k.lower(): v for k, v in (result.request_headers or {}).items()}
    assert result.status == 401 and result.body == b'{"ok": true}'  # saved: the body kept
    for name in ("x-glpi-signature", "x-glpi-timestamp", "webhook-id", "webhook-timestamp",
                 "webhook-signature", "x-custom", "host", "content-length", "user-agent"):
        assert sent[name] == got.headers[name], name
    assert sent["authorization"] == "Bearer ••••(6 chars)" and "abcdef" not in repr(result)
    assert got.body == BODY and hashlib.sha256(got.body).hexdigest()


def test_no_answer_still_reports_what_was_to_be_sent() -> None:
    result = send("http://127.0.0.1:9/closed", save=False)  # the discard port: refused
    assert result.status is None and result.error
    assert result.request_headers is not None
    assert "X-GLPI-signature" in result.request_headers
