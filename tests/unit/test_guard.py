"""The aiohttp SSRF guard, against a real receiver on 127.0.0.1.

Every socket here stays on loopback: "public" addresses are only ever returned
by a resolver and checked, never connected to.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from connectors.delivery.http.guard import (
    BlockedAddressError,
    allowed_networks,
    check_url,
    guarded_connector,
    is_blocked,
)
from hookstream.errors import BlockedDestination
from hookstream.policy import parse_networks

LOOPBACK = parse_networks(["127.0.0.0/8"])
TIMEOUT = aiohttp.ClientTimeout(total=5)


class Receiver:
    """An aiohttp.web server on 127.0.0.1 that counts TCP connections and requests.

    Counting connections, not just requests, shows that a refused destination got
    nothing at all, not even a connection without a request.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.paths: list[str] = []
        self.port = 0
        self._runner: web.ServerRunner | None = None

    async def __aenter__(self) -> Receiver:
        receiver = self

        class CountingServer(web.Server):
            def connection_made(self, handler: Any, transport: Any) -> None:
                receiver.connections += 1
                super().connection_made(handler, transport)

        async def handle(request: web.BaseRequest) -> web.Response:
            self.paths.append(request.path_qs)
            return web.Response(text="ok")

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._runner = web.ServerRunner(CountingServer(handle))
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next list of addresses, repeating the last."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_loopback_is_refused_without_allow_list() -> None:
    async def scenario() -> None:
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(connector=guarded_connector(), timeout=TIMEOUT) as session,
        ):
            with pytest.raises(BlockedDestination) as caught:
                await fetch(session, receiver.url())
            assert "loopback" in str(caught.value)
            assert is_blocked(caught.value) is not None
            assert (receiver.connections, receiver.paths) == (0, [])

    run(scenario)


def test_loopback_is_reached_when_allowed_globally() -> None:
    async def scenario() -> None:
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(
                connector=guarded_connector(LOOPBACK), timeout=TIMEOUT
            ) as session,
        ):
            assert await fetch(session, receiver.url()) == (200, "ok")
            assert receiver.paths == ["/hook"]

    run(scenario)


def test_per_request_allow_list_applies_only_inside_the_block() -> None:
    async def scenario() -> None:
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(
                connector=guarded_connector(force_close=True), timeout=TIMEOUT
            ) as session,
        ):
            with allowed_networks(LOOPBACK):
                assert await fetch(session, receiver.url()) == (200, "ok")
            with pytest.raises(BlockedDestination):
                await fetch(session, receiver.url())
            assert receiver.connections == 1

    run(scenario)


def test_concurrent_deliveries_keep_their_own_allow_lists() -> None:
    async def scenario() -> None:
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(connector=guarded_connector(), timeout=TIMEOUT) as session,
        ):

            async def deliver(allowed: bool) -> str:
                with allowed_networks(LOOPBACK if allowed else ()):
                    await asyncio.sleep(0)  # let the other deliveries interleave
                    try:
                        await fetch(session, receiver.url(path=f"/{allowed}"))
                    except BlockedDestination:
                        return "blocked"
                    return "delivered"

            pattern = [True, False] * 10
            outcomes = await asyncio.gather(*(deliver(a) for a in pattern))
            assert outcomes == ["delivered" if a else "blocked" for a in pattern]
            assert receiver.paths == ["/True"] * 10

    run(scenario)


def test_pooled_connection_is_not_lent_to_a_request_without_the_allowance() -> None:
    # A host name, so that only the pooled connection's peer address can tell.
    async def scenario() -> None:
        resolver = ScriptedResolver(["127.0.0.1"])
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(
                connector=guarded_connector(resolver=resolver), timeout=TIMEOUT
            ) as session,
        ):
            url = receiver.url("pooled.example")
            with allowed_networks(LOOPBACK):
                await fetch(session, url)  # leaves a keep-alive connection
            with pytest.raises(BlockedDestination):
                await fetch(session, url)
            with allowed_networks(LOOPBACK):
                await fetch(session, url)  # the pooled one, still usable
            assert receiver.connections == 1
            assert len(receiver.paths) == 2

    run(scenario)


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "[::ffff:127.0.0.1]"]
)
def test_alternative_spellings_of_loopback_are_refused(host: str) -> None:
    async def scenario() -> None:
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(connector=guarded_connector(), timeout=TIMEOUT) as session,
        ):
            with pytest.raises(BlockedDestination):
                await fetch(session, receiver.url(host))
            assert receiver.connections == 0

    run(scenario)


def test_hostname_resolving_to_loopback_is_refused() -> None:
    async def scenario() -> None:
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(
                connector=guarded_connector(use_dns_cache=False), timeout=TIMEOUT
            ) as session,
        ):
            with pytest.raises(BlockedDestination) as caught:
                await fetch(session, receiver.url("localhost"))
            assert "loopback" in str(caught.value)
            assert receiver.connections == 0
            # The same name, allowed, reaches the receiver (over 127.0.0.1).
            with allowed_networks(parse_networks(["127.0.0.0/8", "::1"])):
                assert await fetch(session, receiver.url("localhost")) == (200, "ok")

    run(scenario)


def test_dns_rebinding_never_reaches_loopback() -> None:
    async def scenario() -> None:
        resolver = ScriptedResolver(["93.184.216.34"], ["127.0.0.1"])
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(
                connector=guarded_connector(resolver=resolver, use_dns_cache=False),
                timeout=TIMEOUT,
            ) as session,
        ):
            # A check-then-fetch validator would see the first, public answer...
            first = await resolver.resolve("rebind.example", receiver.port)
            assert check_url(f"http://{first[0]['host']}/", ()) is None
            # ...but the connection is judged on the address actually connected to.
            with pytest.raises(BlockedDestination):
                await fetch(session, receiver.url("rebind.example"))
            assert resolver.calls == 2
            assert receiver.connections == 0

    run(scenario)


def test_blocked_addresses_are_skipped_for_an_allowed_one() -> None:
    async def scenario() -> None:
        resolver = ScriptedResolver(["10.0.0.1", "169.254.169.254", "127.0.0.1"])
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(
                connector=guarded_connector(LOOPBACK, resolver=resolver), timeout=TIMEOUT
            ) as session,
        ):
            assert await fetch(session, receiver.url("multi.example")) == (200, "ok")
            assert receiver.connections == 1

    run(scenario)


def test_connection_refused_is_not_reported_as_blocked() -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession(
            connector=guarded_connector(LOOPBACK), timeout=TIMEOUT
        ) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await fetch(session, f"http://127.0.0.1:{closed_port()}/")
            assert not isinstance(caught.value, BlockedDestination)
            assert is_blocked(caught.value) is None

    run(scenario)


def test_refusal_by_an_allowed_address_wins_over_blocked_ones() -> None:
    # One address blocked, the permitted one refusing: a retryable failure.
    async def scenario() -> None:
        resolver = ScriptedResolver(["10.0.0.1", "127.0.0.1"])
        async with aiohttp.ClientSession(
            connector=guarded_connector(LOOPBACK, resolver=resolver), timeout=TIMEOUT
        ) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await fetch(session, f"http://mixed.example:{closed_port()}/")
            assert not isinstance(caught.value, BlockedDestination)

    run(scenario)


def test_caller_socket_factory_runs_after_the_guard() -> None:
    created: list[str] = []

    def factory(addr_info: Any) -> socket.socket:
        created.append(addr_info[4][0])
        return socket.socket(addr_info[0], addr_info[1], addr_info[2])

    async def scenario() -> None:
        async with (
            Receiver() as receiver,
            aiohttp.ClientSession(
                connector=guarded_connector(socket_factory=factory), timeout=TIMEOUT
            ) as session,
        ):
            with pytest.raises(BlockedDestination):
                await fetch(session, receiver.url("localhost"))
            with allowed_networks(LOOPBACK):
                await fetch(session, receiver.url())

    run(scenario)
    assert created == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1/", True),
        ("http://2130706433/", True),
        ("https://0x7f.1:8443/x", True),
        ("http://[::1]/", True),
        ("http://[::ffff:169.254.169.254]/", True),
        ("http://169.254.169.254/latest/meta-data/", True),
        ("http:///nohost", True),
        ("http://93.184.216.34/", False),
        ("http://[2606:4700::1111]/", False),
        ("http://example.com/", False),  # judged at connect time
        ("http://localhost/", False),  # judged at connect time
    ],
)
def test_check_url(url: str, refused: bool) -> None:
    assert (check_url(url, ()) is not None) is refused


def test_check_url_honours_the_allow_list() -> None:
    assert check_url("http://2130706433/", LOOPBACK) is None


def test_is_blocked_walks_the_cause_chain() -> None:
    blocked = BlockedAddressError("127.0.0.1", "loopback: 127.0.0.1")
    try:
        try:
            raise blocked
        except OSError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as wrapped:
        assert is_blocked(wrapped) == "loopback: 127.0.0.1"
    assert is_blocked(ConnectionRefusedError(111, "refused")) is None
    assert is_blocked(BlockedDestination("x: loopback")) == "x: loopback"
