"""SSRF guard for aiohttp: refuse blocked addresses at the moment of connecting.

Checking a URL's host before the request leaves a window: the name can resolve
to a public address for the check and to 127.0.0.1 for the connection (DNS
rebinding), and IP literals never reach a resolver at all. So the guard sits on
the one hook that sees the final socket address, aiohttp's `socket_factory`,
called by aiohappyeyeballs with each address it is about to connect to. A
blocked address gets no socket, hence not even a SYN.

Three more pieces close the remaining gaps:

* `GuardedConnector.connect` rejects URL hosts that are IP literals or legacy
  `inet_aton` spellings ("2130706433") before aiohttp resolves anything, and
  its `_create_connection` (new connections only) turns "every address tried was
  refused by the guard" into `BlockedDestination`, which aiohttp would otherwise
  fold into a generic ClientConnectorError.
* Pooled keep-alive connections skip the socket factory, and the pool is shared
  by webhooks with different allow-lists; `connect` therefore checks the peer
  address of every connection it hands out, pooled or new.
* Per-webhook allow-lists travel in a context variable (`allowed_networks`).
  asyncio gives every task its own copy of the context, and tasks started inside
  the `with` block (happy-eyeballs attempts, `asyncio.gather`) inherit it, so
  concurrent deliveries never see each other's lists.

With a proxy, the address connected to is the proxy's: allow the proxy's network
globally; the proxy then decides where the request goes. Literal target hosts are
still checked.
"""

from __future__ import annotations

import contextvars
import socket
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from hookstream.errors import BlockedDestination
from hookstream.policy import Network, blocked_reason, literal_ipv4

# The allow-list of the delivery running in this context, on top of the global one.
_REQUEST_ALLOW: contextvars.ContextVar[tuple[Network, ...]] = contextvars.ContextVar(
    "hookstream_guard_allow", default=()
)
# What the socket factory decided during the current `connect` call.
_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "hookstream_guard_attempt", default=None
)


class BlockedAddressError(OSError):
    """The socket factory refused an address.

    An OSError, because aiohappyeyeballs only moves on to a resolved host's next
    address after an OSError, and aiohttp wraps it as a ClientConnectorError.
    """

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"blocked destination: {reason}")


@dataclass
class _Attempt:
    """Addresses the socket factory saw during one `connect` call."""

    blocked: list[str] = field(default_factory=list)
    permitted: list[str] = field(default_factory=list)

    @property
    def all_blocked(self) -> bool:
        return bool(self.blocked) and not self.permitted


class allowed_networks:  # a function to its callers: `with allowed_networks(...)`
    """Allow `networks` for requests made inside the block, in this task only.

    Wrap the whole request, redirects included:

        with allowed_networks(webhook_allow):
            async with session.post(url, data=body) as response:
                ...

    A nested block replaces the outer list; the connector's global list always
    applies as well. (A class, not a generator: it wraps every attempt.)
    """

    __slots__ = ("_networks", "_token")

    def __init__(self, networks: Iterable[Network]):
        self._networks = tuple(networks)

    def __enter__(self) -> None:
        self._token = _REQUEST_ALLOW.set(self._networks)

    def __exit__(self, *exc: object) -> None:
        _REQUEST_ALLOW.reset(self._token)


def check_url(url: str | URL, allow: Sequence[Network]) -> str | None:
    """Why `url` must not be requested, judged from the URL alone; None if it may.

    Only hosts that are IP literals (including "2130706433"-style spellings) can
    be judged here; host names are judged at connect time by the connector.
    """
    try:
        host = URL(url).raw_host if isinstance(url, str) else url.raw_host
    except ValueError as e:
        return f"invalid URL: {e}"
    if not host:
        return "URL has no host"
    address = literal_ipv4(host) or (host if ":" in host else None)
    if address is None:
        return None
    return blocked_reason(address, allow)


def is_blocked(exc: BaseException) -> str | None:
    """The guard's reason if `exc` is, or was caused by, a refusal; None otherwise.

    Walks __cause__, __context__ and aiohttp's `os_error`, so it answers for the
    BlockedDestination that GuardedConnector raises as well as for a raw
    ClientConnectorError around a BlockedAddressError. A refused, reset or timed
    out connection returns None: those are worth retrying, a block is not.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BlockedAddressError):
            return current.reason
        if isinstance(current, BlockedDestination):
            return str(current)
        linked = (current.__cause__, current.__context__, getattr(current, "os_error", None))
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return None


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that never connects to an address the SSRF guard refuses.

    Refusals surface as `BlockedDestination` from the request call.
    """

    def __init__(self, allow: Sequence[Network] = (), **tcp_kwargs: Any) -> None:
        self._guard_allow = tuple(allow)
        # A caller's own socket factory still runs, after the guard has agreed.
        self._guard_inner: SocketFactoryType | None = tcp_kwargs.pop("socket_factory", None)
        super().__init__(socket_factory=self._guarded_socket, **tcp_kwargs)
        # The peer of a connection never changes: its verdict per allow-list is kept for
        # as long as the connection (its protocol object) lives, pooled reuses included.
        self._peer_verdicts: weakref.WeakKeyDictionary[
            Any, dict[tuple[Network, ...], str | None]
        ] = weakref.WeakKeyDictionary()

    def _effective_allow(self) -> tuple[Network, ...]:
        return self._guard_allow + _REQUEST_ALLOW.get()

    def _guarded_socket(self, addr_info: AddrInfoType) -> socket.socket:
        """The socket factory: refuse, or create the socket for `addr_info`."""
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        reason = blocked_reason(address, self._effective_allow())
        attempt = _ATTEMPT.get()
        if reason is not None:
            if attempt is not None:
                attempt.blocked.append(reason)
            raise BlockedAddressError(address, reason)
        if attempt is not None:
            attempt.permitted.append(address)
        if self._guard_inner is not None:
            return self._guard_inner(addr_info)
        return socket.socket(family=family, type=type_, proto=proto)

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        """Check the URL, connect (a pooled connection, or a new one through the guarded
        socket factory), check the peer."""
        allow = self._effective_allow()
        reason = check_url(req.url, allow)
        if reason is not None:
            raise BlockedDestination(f"{req.url.host}: {reason}")
        conn = await super().connect(req, traces, timeout)
        reason = self._cached_peer_reason(conn, allow)
        if reason is not None:
            # A pooled connection opened for a webhook with a wider allow-list:
            # hand it back to the pool intact, but not to this request.
            conn.release()
            raise BlockedDestination(f"{req.url.host}: {reason}")
        return conn

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        """A new connection (a pooled one never gets here): what the socket factory refused
        is a block only if no permitted address was tried; when one was, the failure is an
        ordinary (retryable) connection failure."""
        attempt = _Attempt()
        token = _ATTEMPT.set(attempt)
        try:
            return await super()._create_connection(req, traces, timeout)
        except aiohttp.ClientConnectorError as e:
            if attempt.all_blocked:
                reasons = "; ".join(dict.fromkeys(attempt.blocked))
                raise BlockedDestination(f"{req.url.host}: {reasons}") from e
            raise
        finally:
            _ATTEMPT.reset(token)

    def _cached_peer_reason(self, conn: Connection, allow: tuple[Network, ...]) -> str | None:
        protocol = conn.protocol
        if protocol is None or conn.transport is None:
            return self._peer_reason(conn, allow)
        verdicts = self._peer_verdicts.get(protocol)
        if verdicts is None:
            verdicts = self._peer_verdicts[protocol] = {}
        elif allow in verdicts:
            return verdicts[allow]
        reason = self._peer_reason(conn, allow)
        if len(verdicts) < 64:
            verdicts[allow] = reason
        return reason

    @staticmethod
    def _peer_reason(conn: Connection, allow: Sequence[Network]) -> str | None:
        transport = conn.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer:
            return "peer address unknown"
        return blocked_reason(str(peer[0]), allow)


def guarded_connector(allow: Sequence[Network] = (), **tcp_kwargs: Any) -> aiohttp.TCPConnector:
    """A TCPConnector refusing, at connect time, every address `blocked_reason` refuses.

    `allow` applies to every request; add per-webhook networks with
    `allowed_networks`. Other keyword arguments go to aiohttp.TCPConnector.
    """
    return GuardedConnector(allow, **tcp_kwargs)
