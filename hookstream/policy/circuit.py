"""Circuit breakers, one per target origin (scheme://host:port).

    CLOSED ──(failure_threshold consecutive failures)──▶ OPEN
    OPEN ──(cool-down over, next admit)──▶ HALF_OPEN: one probe goes out
    HALF_OPEN ──(probe succeeds)──▶ CLOSED
    HALF_OPEN ──(probe fails)──▶ OPEN, cool-down doubled up to max_cooldown_s

While an origin is open, `admit` answers REJECT: the caller moves due deliveries to
the next retry tier without an HTTP call and without spending an attempt, so a dead
endpoint does not burn through every delivery's retries. A success at any time
closes the circuit and forgets the origin.

The cool-down doubles on every failed probe so that an endpoint that stays down for
hours is probed rarely; set `max_cooldown_s == cooldown_s` to keep it fixed.

Time is an argument (`now_s`, any monotonic clock in seconds). Not thread-safe: one
instance per asyncio loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_COOLDOWN_S = 600.0  # the longest an origin stays open before a probe may go (default)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(StrEnum):
    """The answer to "may I send to this origin now?"."""

    ALLOW = "allow"
    """Closed circuit: send."""
    PROBE = "probe"
    """Send, as the single probe of a half-open circuit; report the outcome with `record`."""
    REJECT = "reject"
    """Open circuit, or a probe already in flight: do not send."""


@dataclass(slots=True)
class _Circuit:
    """Mutable, private state of one origin's breaker."""

    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    cooldown_s: float = 0.0
    until_s: float = 0.0
    """OPEN: when a probe may go. HALF_OPEN: when the probe in flight is presumed lost."""


class CircuitBreakers:
    """The breakers of every origin, with memory bounded to origins that are failing.

    Only origins with failures or an open circuit have an entry: a success deletes
    it. Closed entries (a few failures, below the threshold) are capped at
    `max_tracked`; beyond it the least recently failed is forgotten, which only
    loses a partial failure count. Open origins are never forgotten.
    """

    def __init__(self, failure_threshold: int = 5, cooldown_s: float = 30.0,
                 max_cooldown_s: float = MAX_COOLDOWN_S, *, max_tracked: int = 10_000) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if cooldown_s <= 0:
            raise ValueError(f"cooldown_s must be positive, got {cooldown_s}")
        if max_cooldown_s < cooldown_s:
            raise ValueError(f"max_cooldown_s ({max_cooldown_s}) is below cooldown_s "
                             f"({cooldown_s})")
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be at least 1, got {max_tracked}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.max_tracked = max_tracked
        # Insertion order = order of last failure (moved to the end on each one),
        # so the oldest closed entry is the first closed one found.
        self._circuits: dict[str, _Circuit] = {}

    def admit(self, origin: str, now_s: float) -> Admission:
        """Whether a request to `origin` may go now."""
        circuit = self._circuits.get(origin)
        if circuit is None or circuit.state is CircuitState.CLOSED:
            return Admission.ALLOW
        if now_s < circuit.until_s:
            return Admission.REJECT
        # OPEN with its cool-down over, or HALF_OPEN whose probe never reported (its
        # consumer crashed or lost it): let one probe through, and give it until the
        # end of another cool-down to report before a new one may go.
        circuit.state = CircuitState.HALF_OPEN
        circuit.until_s = now_s + circuit.cooldown_s
        return Admission.PROBE

    def record(self, origin: str, success: bool, now_s: float) -> CircuitState:
        """Record an outcome for `origin`; returns the state it leaves the circuit in.

        Any failure while half-open counts as the probe failing, and any success
        closes the circuit: a late answer to a request sent before the circuit opened
        is as recent evidence as the probe's.
        """
        if success:
            self._circuits.pop(origin, None)
            return CircuitState.CLOSED
        circuit = self._circuits.pop(origin, None) or _Circuit(cooldown_s=self.cooldown_s)
        self._circuits[origin] = circuit  # re-inserted last: most recently failed
        if circuit.state is CircuitState.HALF_OPEN:
            circuit.cooldown_s = min(circuit.cooldown_s * 2, self.max_cooldown_s)
            self._open(circuit, now_s)
        elif circuit.state is CircuitState.CLOSED:
            circuit.failures += 1
            if circuit.failures >= self.failure_threshold:
                self._open(circuit, now_s)
            else:
                self._bound()
        # OPEN: a straggler sent before the circuit opened; it must not push the
        # probe further away.
        return circuit.state

    def state(self, origin: str) -> CircuitState:
        """The recorded state. An OPEN circuit turns HALF_OPEN only when a probe is admitted."""
        circuit = self._circuits.get(origin)
        return CircuitState.CLOSED if circuit is None else circuit.state

    def not_closed(self) -> dict[str, CircuitState]:
        """Each origin whose circuit is OPEN or HALF_OPEN, with its state (per-origin gauge)."""
        return {o: c.state for o, c in self._circuits.items() if c.state is not CircuitState.CLOSED}

    def _open(self, circuit: _Circuit, now_s: float) -> None:
        circuit.state = CircuitState.OPEN
        circuit.failures = 0
        circuit.until_s = now_s + circuit.cooldown_s

    def _bound(self) -> None:
        """Forget the least recently failed closed origin once over `max_tracked`."""
        if len(self._circuits) <= self.max_tracked:
            return
        for origin, circuit in self._circuits.items():
            if circuit.state is CircuitState.CLOSED:
                del self._circuits[origin]
                return


def origin_of(url: str) -> str:
    """The origin of `url`: lowercase scheme and host, port always explicit.

    "HTTPS://Example.COM/x" -> "https://example.com:443". IPv6 hosts keep their
    brackets. ValueError when the URL has no host, or no port and a scheme without a
    default one.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname  # lowercased, userinfo and brackets removed
    if not scheme or not host:
        raise ValueError(f"not an absolute URL with a host: {url!r}")
    port = parts.port  # raises ValueError on a port out of range
    if port is None:
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"no port in {url!r} and no default port for {scheme!r}")
        port = _DEFAULT_PORTS[scheme]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
