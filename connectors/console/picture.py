"""A picture of each webhook for the console: its last delivery, its target's circuit as
delivery last saw it, and its last 24 hours as a chart.

The circuit breakers live in the delivery process's memory, not here (the console runs in
the admin process). What the log store keeps is each attempt's outcome, and an attempt
skipped because its origin's circuit was open is recorded as `circuit_open`. So the state
shown is derived from the webhook's latest attempt (`circuit_seen`) and says when it was
seen: a skip less than the longest cool-down ago means open; an older skip, a cool-down
over (the next due delivery is its probe: half-open); a request that went out, closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup
from sqlalchemy import Engine

from connectors.console.chart import Hour, chart_svg, hourly_series, summary
from connectors.logstore.activity import (
    Latest,
    hourly_attempts,
    latest_attempted,
    latest_deliveries,
)
from hookstream.policy.circuit import MAX_COOLDOWN_S
from hookstream.records import Outcome

MAX_OPEN_MS = int(MAX_COOLDOWN_S * 1000)


@dataclass(frozen=True, slots=True)
class CircuitSeen:
    state: str  # "open", "half-open", "closed" or "unknown" (no attempt yet)
    at_ms: int | None  # when delivery saw it: the latest attempt's time


@dataclass(frozen=True, slots=True)
class Picture:
    last: Latest | None  # the latest delivery created
    circuit: CircuitSeen
    series: list[Hour]
    chart: Markup
    summary: str


def circuit_seen(latest: Latest | None, now_ms: int, max_open_ms: int = MAX_OPEN_MS
                 ) -> CircuitSeen:
    """The circuit of the webhook's target as its latest attempt shows it."""
    if latest is None or latest.last_attempt_at is None:
        return CircuitSeen("unknown", None)
    at = latest.last_attempt_at
    if latest.last_outcome == Outcome.CIRCUIT_OPEN:
        return CircuitSeen("open" if now_ms - at < max_open_ms else "half-open", at)
    return CircuitSeen("closed", at)


def pictures(engine: Engine, webhook_ids: Sequence[str], instances: Sequence[str] | None,
             now_ms: int, *, every_webhook: bool = False, css_class: str = "chart"
             ) -> dict[str, Picture]:
    """The picture of each webhook, in three statements whatever their number.
    `every_webhook`: the ids are every webhook the scope holds, so the chart's query
    needs no list of them."""
    counts = hourly_attempts(engine, None if every_webhook else webhook_ids, instances, now_ms)
    last = latest_deliveries(engine, webhook_ids, instances)
    attempted = latest_attempted(engine, webhook_ids, instances)
    found = {}
    for w in webhook_ids:
        series = hourly_series(counts.get(w, {}), now_ms)
        found[w] = Picture(last.get(w), circuit_seen(attempted.get(w), now_ms), series,
                           chart_svg(series, css_class), summary(series))
    return found
