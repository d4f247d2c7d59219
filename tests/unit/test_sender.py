"""The sender translates only what a receiver or the network can cause into "no answer";
a bug of hookstream's own (here: signing) raises, never charging the target's circuit."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp
import pytest

from connectors.delivery.http import Sender, Target
from hookstream.policy import RetryPolicy
from hookstream.records import DeliveryRequest

REQUEST = DeliveryRequest("d1", "w", "glpi", "e1", "Ticket", 1, "new", "POST",
                          "http://receiver.test/h", b"{}", 0)


def target(scheme: str = "both") -> Target:
    return Target("w", 1, "s" * 40, scheme, 5.0, RetryPolicy.DEFAULT, 3, (10,), False, False,
                  "", "", "", False, ())


class FailingSession:
    """A session whose every request raises `error` (and records that it was asked)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.asked = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        raise self.error


def send(session: FailingSession, target: Target) -> Any:
    sender = Sender(cast(aiohttp.ClientSession, session), lambda: 1_700_000_000.0)
    return asyncio.run(sender.send(REQUEST, target))


def test_a_bug_in_signing_raises_and_is_not_reported_as_no_answer() -> None:
    session = FailingSession(aiohttp.ServerDisconnectedError())
    with pytest.raises(ValueError, match="unknown signature scheme"):
        send(session, target(scheme="no-such-scheme"))
    assert session.asked == 0  # nothing went to the receiver


def test_a_bug_around_the_request_raises() -> None:
    with pytest.raises(RuntimeError, match="a bug"):
        send(FailingSession(RuntimeError("a bug")), target())


@pytest.mark.parametrize("error, reported", [
    (aiohttp.ServerDisconnectedError(), "ServerDisconnectedError"),
    (TimeoutError(), "timeout after 5s"),
    (ConnectionResetError(), "ConnectionResetError"),
])
def test_what_the_network_does_is_no_answer(error: BaseException, reported: str) -> None:
    result = send(FailingSession(error), target())
    assert result.status is None and result.error == reported
    assert result.request_headers is not None and "webhook-signature" in {
        k.lower() for k in result.request_headers}
