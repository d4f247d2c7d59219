"""A group consumer that no longer takes part in its group, told from librdkafka's statistics.

librdkafka can leave a consumer out of its group for good after its broker froze mid-session:
in bench/chaos/pipeline.py's pause scenario (the broker SIGSTOPped for 60 s) delivery's
consumer sent no heartbeat once the broker came back, the coordinator removed it, and it
never joined again, in 2 of 10 runs: the process looked alive and delivered nothing. Its
statistics say so: the group's join state stays away from "steady" while a broker is up.
Every member of hookstream's groups polls at least every few hundred milliseconds, so a
rebalance ends within seconds; minutes away from steady with a broker up is a stuck client,
and only a new client gets out of it: delivery exits to be restarted, the processor builds
new clients (it rebuilds them in place after any fatal error).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from hookstream.io.kafka_link import LINK

STUCK_AFTER_S = 120.0


class GroupWatch:
    """Fed a group consumer's statistics, one sample at a time (`stats_cb`)."""

    def __init__(self, stuck_after_s: float = STUCK_AFTER_S) -> None:
        self.stuck_after_s = stuck_after_s
        self._away_since: float | None = None  # when the join state left steady

    def stuck(self, stats: Mapping[str, Any], now_s: float) -> str | None:
        """Why the consumer is out of its group for good, or None. An outage (no broker
        up) is not being stuck: the clock starts again once a broker is back."""
        group = stats.get("cgrp")
        if not group:
            return None
        broker_up = any(b.get("state") == "UP" for b in stats.get("brokers", {}).values())
        if group.get("join_state") == "steady" or not broker_up:
            self._away_since = None
            return None
        if self._away_since is None:
            self._away_since = now_s
        away_s = now_s - self._away_since
        if away_s < self.stuck_after_s:
            return None
        return (f"the Kafka consumer has been out of its group for {away_s:.0f} s with a broker"
                f" up (group state {group.get('state')}, join state {group.get('join_state')}):"
                " a client that will not rejoin; a new client will")


def watched_stats(watch: GroupWatch, on_stuck: Callable[[str], None],
                  clock: Callable[[], float] = time.monotonic) -> Callable[[str], None]:
    """A group consumer's stats_cb: the process's link watch, then `watch`, which calls
    `on_stuck` with the reason once the consumer is stuck (statistics parsed once)."""
    def on_stats(stats_json: str) -> None:
        stats = json.loads(stats_json)
        LINK.seen(stats)
        if (why := watch.stuck(stats, clock())) is not None:
            on_stuck(why)
    return on_stats
