"""One delivery attempt over HTTP: CRA challenge, OAuth token, signing at send time.

`Sender.send` never raises for the target's behaviour: it returns an `HttpResult`
saying what happened (a status, no response, blocked, or challenge failed). Only the
exceptions a receiver or the network can cause are translated (`NO_ANSWER`, as httpx's
transport maps httpcore's); any other exception is hookstream's own bug and raises, so it
is never mistaken for a target that did not answer (charging its circuit, retrying).
Errors never carry a secret: messages are built from exception types and the target's
origin only.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

import aiohttp

from connectors.delivery.http.guard import allowed_networks, is_blocked
from connectors.delivery.http.targets import Target
from hookstream.errors import BlockedDestination, OAuthFailed
from hookstream.policy import (
    Network,
    cra_expected_answer,
    cra_token,
    cra_url,
    signature_headers,
)
from hookstream.policy.redact import redact_headers
from hookstream.records import DeliveryRequest


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int | None = None
    # The response's headers, names in lowercase: all of them when the webhook saves the
    # response body, else only Retry-After (nothing else of them is kept).
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    error: str | None = None
    blocked: str | None = None  # the SSRF guard refused the address
    challenge_failed: str | None = None  # CRA failed: no attempt spent
    token_failed: bool = False  # the OAuth token endpoint failed: the target was not asked
    # The headers of the request as sent (credentials redacted); None when none was sent.
    request_headers: dict[str, str] | None = None


# What a request may raise for the receiver's or the network's doing: aiohttp's client
# errors (refused, reset, DNS, bad answer), timeouts, socket errors, the SSRF guard's
# refusal. Everything else propagates.
NO_ANSWER: tuple[type[BaseException], ...] = (
    aiohttp.ClientError, TimeoutError, OSError, BlockedDestination)

MAX_CACHED = 10_000  # entries of a cache before the expired ones are swept


K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class _Sent:
    """The headers of the request of an attempt, once known: ours, then those on the wire."""

    headers: Mapping[str, str] | None = None


@dataclass(slots=True)
class _Flight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@asynccontextmanager
async def _single_flight(flights: dict[K, _Flight], key: K) -> AsyncIterator[None]:
    """One holder at a time per key; the entry lives only while someone holds or waits."""
    flight = flights.get(key)
    if flight is None:
        flight = flights[key] = _Flight()
    flight.users += 1
    try:
        async with flight.lock:
            yield
    finally:
        flight.users -= 1
        if flight.users == 0:
            del flights[key]


def _sweep(cache: dict[K, V], expiry: Callable[[V], float], now: float) -> None:
    """Drop expired entries once the cache is large: memory follows what is in use."""
    if len(cache) >= MAX_CACHED:
        for key in [k for k, v in cache.items() if expiry(v) <= now]:
            del cache[key]


class OAuthTokens:
    """Client-credentials tokens, cached until shortly before they expire; one request
    at a time per client, however many deliveries wait for it."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str, str], _Flight] = {}
        self.requests = 0

    def invalidate(self, target: Target, token: str) -> None:
        key = _client_key(target)
        if self._tokens.get(key, ("", 0.0))[0] == token:
            del self._tokens[key]

    async def token(self, session: aiohttp.ClientSession, target: Target) -> str:
        key = _client_key(target)
        async with _single_flight(self._locks, key):
            return await self._token(session, target, key)

    def __len__(self) -> int:
        return len(self._tokens)

    async def _token(
        self, session: aiohttp.ClientSession, target: Target, key: tuple[str, str, str]
    ) -> str:
        cached = self._tokens.get(key)
        if cached and cached[1] > self._clock():
            return cached[0]
        self.requests += 1
        form = {
            "grant_type": "client_credentials",
            "client_id": target.clientid,
            "client_secret": target.clientsecret,
            "scope": "",
        }
        timeout = aiohttp.ClientTimeout(total=target.timeout_s)
        async with session.post(
            target.oauth_url, data=form, timeout=timeout, allow_redirects=False
        ) as response:
            if response.status != 200:
                raise OAuthFailed(f"token endpoint answered HTTP {response.status}")
            try:
                answer = await response.json(content_type=None)
            except ValueError as e:  # the endpoint's answer, not hookstream, is at fault
                raise OAuthFailed("token endpoint answer is not JSON") from e
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise OAuthFailed("token endpoint answer has no access_token")
        try:
            lifetime = float(answer.get("expires_in") or 3600)
        except (TypeError, ValueError) as e:
            raise OAuthFailed("token endpoint answer has an invalid expires_in") from e
        # Renew a little early so a token never expires in flight.
        self._tokens[key] = (token, self._clock() + lifetime - min(30.0, lifetime * 0.1))
        _sweep(self._tokens, lambda entry: entry[1], self._clock())
        return token


def _client_key(target: Target) -> tuple[str, str, str]:
    """Tokens are shared by webhooks of one OAuth client, secret included: a webhook with a
    wrong client secret must not borrow a token fetched with the right one."""
    digest = hashlib.sha256(target.clientsecret.encode()).hexdigest()
    return (target.oauth_url, target.clientid, digest)


class Sender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.time,
        cra_cache_s: float = 300.0,
        body_cap_bytes: int = 65_536,
    ):
        self.session = session
        self.clock = clock
        self.cra_cache_s = cra_cache_s
        self.body_cap_bytes = body_cap_bytes
        self.oauth = OAuthTokens(clock)
        self._cra_passed: dict[tuple[str, str], float] = {}  # until when a pass holds
        self._cra_failed: dict[tuple[str, str], float] = {}  # when the last challenge failed
        self._cra_flights: dict[tuple[str, str], _Flight] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self.challenges = 0

    async def send(
        self, request: DeliveryRequest, target: Target, global_allow: tuple[Network, ...] = ()
    ) -> HttpResult:
        """One attempt; signs at send time so retries stay within the receiver's tolerance.
        The result carries the headers of the request as sent (the signature headers and
        those the client adds included; credentials redacted)."""
        sent = _Sent()  # filled by _request once the headers are known
        with allowed_networks(target.allow):
            try:
                if target.use_cra_challenge and not await self._challenge(request.url, target):
                    return HttpResult(
                        challenge_failed="CRA challenge failed", error="CRA challenge failed"
                    )
                result = await self._request(request, target, sent)
                if result.status == 401 and target.use_oauth:
                    result = await self._request(request, target, sent, refresh=True)
                return result
            except OAuthFailed as e:
                return HttpResult(error=f"oauth: {e}", token_failed=True)
            except NO_ANSWER as e:
                failure = _failure(e, target.timeout_s)
                if sent.headers is not None and failure.blocked is None:  # it may have left
                    failure = replace(failure, request_headers=redact_headers(sent.headers))
                return failure

    async def _request(
        self, request: DeliveryRequest, target: Target, sent: _Sent, refresh: bool = False
    ) -> HttpResult:
        now_s = self.clock()
        # The signature is computed once per request sent (an OAuth refresh sends another,
        # at its own time), over the body as it goes.
        headers = {
            **request.headers,
            **signature_headers(
                target.signature_scheme,
                target.secret,
                request.delivery_id,
                request.body,
                int(now_s),
                target.previous_secrets(now_s),
            ),
        }
        token = ""
        if target.use_oauth:
            token = await self.oauth.token(self.session, target)
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = f"Bearer {token}"
        sent.headers = headers
        async with self.session.request(
            request.method,
            request.url,
            data=request.body,
            headers=headers,
            timeout=self._timeout(target.timeout_s),
            allow_redirects=False,
        ) as response:
            # What went on the wire: ours plus those the client added (Host, Content-Length,
            # Content-Type, User-Agent, Accept...).
            sent.headers = response.request_info.headers
            if target.save_response_body:
                body = await response.content.read(self.body_cap_bytes)
                kept = {k.lower(): v for k, v in response.headers.items()}
            else:  # the attempt record keeps neither: only what decides the next try
                body, kept = None, _retry_after(response.headers)
            if response.status == 401 and token and not refresh:
                self.oauth.invalidate(target, token)
            return HttpResult(
                response.status, kept, body, request_headers=redact_headers(sent.headers))

    def _timeout(self, timeout_s: float) -> aiohttp.ClientTimeout:
        """The request timeout for `timeout_s`, made once per value (not per attempt)."""
        timeout = self._timeouts.get(timeout_s)
        if timeout is None:
            if len(self._timeouts) >= MAX_CACHED:
                self._timeouts.clear()
            timeout = self._timeouts[timeout_s] = aiohttp.ClientTimeout(
                total=timeout_s, connect=min(5.0, timeout_s))
        return timeout

    async def _challenge(self, url: str, target: Target) -> bool:
        """The CRA challenge, single-flight per webhook and URL: deliveries arriving while
        one is in flight wait for its verdict, pass or fail, rather than each sending one."""
        key = (target.webhook_id, url)
        if self._cra_passed.get(key, 0.0) > self.clock():
            return True
        arrived = self.clock()
        async with _single_flight(self._cra_flights, key):
            if self._cra_passed.get(key, 0.0) > self.clock():
                return True
            if self._cra_failed.get(key, -1.0) >= arrived:
                return False  # the challenge this delivery waited for failed
            passed = await self._challenge_once(url, target)
            now = self.clock()
            if passed:
                self._cra_passed[key] = now + self.cra_cache_s
                self._cra_failed.pop(key, None)
                _sweep(self._cra_passed, lambda until: until, now)
            else:
                self._cra_failed[key] = now
                _sweep(self._cra_failed, lambda at: at + self.cra_cache_s, now)
            return passed

    async def _challenge_once(self, url: str, target: Target) -> bool:
        self.challenges += 1
        token = cra_token(target.secret)
        timeout = aiohttp.ClientTimeout(total=target.timeout_s)
        # GLPI sends the challenge with no other headers.
        async with self.session.get(
            cra_url(url, token), timeout=timeout, allow_redirects=False
        ) as response:
            answer = await response.content.read(1024)
            return response.status == 200 and answer.decode(
                errors="replace"
            ).strip() == cra_expected_answer(target.secret, token)


def _retry_after(headers: Mapping[str, str]) -> dict[str, str]:
    value = headers.get("Retry-After")  # aiohttp's headers ignore case
    return {} if value is None else {"retry-after": value}


def _failure(error: BaseException, timeout_s: float) -> HttpResult:
    blocked = is_blocked(error)
    if blocked:
        return HttpResult(blocked=blocked, error=f"blocked: {blocked}")
    if isinstance(error, asyncio.TimeoutError):
        return HttpResult(error=f"timeout after {timeout_s:g}s")
    if isinstance(error, aiohttp.ClientConnectorError):
        return HttpResult(error=f"connection failed: {error.os_error.strerror or 'error'}")
    return HttpResult(error=type(error).__name__)
