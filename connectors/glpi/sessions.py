"""One long-lived GLPI session per instance, with calls spaced per instance.

For the components that write into GLPI as they consume Kafka (`run writeback`,
`run ticketer`): a GlpiClient is opened the first time an instance is needed and kept
(App-Token and user_token, one initSession), and calls to one instance are spaced by at
least 1/`rate_per_s` seconds, so that a burst of records never floods a GLPI.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.glpi.client import GlpiClient


class GlpiSessions:
    """Clients by instance name; `paced(instance)` before each call."""

    def __init__(self, clients: Callable[[str], GlpiClient], rate_per_s: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._clients, self._open = clients, dict[str, GlpiClient]()
        self._gap_s, self._clock, self._sleep = 1.0 / rate_per_s, clock, sleep
        self._last: dict[str, float] = {}

    def paced(self, instance: str) -> GlpiClient:
        """The instance's client, once the gap since its previous call has passed.
        ConfigError when the instance is unknown or has no API access."""
        client = self._open.get(instance)
        if client is None:
            client = self._open[instance] = self._clients(instance)
        wait = self._last.get(instance, -1e9) + self._gap_s - self._clock()
        if wait > 0:
            self._sleep(wait)
        self._last[instance] = self._clock()
        return client

    def forget(self, instance: str) -> None:
        """End an instance's session (its definition changed: new URL or tokens)."""
        client = self._open.pop(instance, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for client in self._open.values():
            client.close()
        self._open.clear()


def backoff_s(failures: int, cap_s: float = 60.0) -> float:
    """The wait after `failures` consecutive failures to reach a GLPI: 1s, 2s, 4s ... cap."""
    return float(min(cap_s, 0.5 * 2 ** max(1, failures)))
