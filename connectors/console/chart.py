"""A webhook's last 24 hours as a small stacked bar chart: pure functions from the log
store's counts to 24 hourly buckets, and from those to an inline SVG (no script, no
library; colours are console.css classes, so the page's styles and its CSP hold).

    counts {(hour, outcome): n} ──hourly_series──▶ 24 Hours, oldest first ──chart_svg──▶ <svg>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from hookstream.records import Outcome

HOUR_MS = 3600 * 1000
HOURS = 24
BAR_W, GAP_W, HEIGHT = 6, 2, 32  # SVG user units; the page scales the whole
# bottom to top, as stacked: what arrived, what is being retried, what was given up on
LAYERS = (("delivered", Outcome.DELIVERED), ("retried", Outcome.RETRY_SCHEDULED),
          ("dead_lettered", Outcome.DEAD_LETTERED))


@dataclass(frozen=True, slots=True)
class Hour:
    start_ms: int  # the clock hour's first millisecond (UTC)
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.retried + self.dead_lettered


def hourly_series(counts: Mapping[tuple[int, str], int], now_ms: int) -> list[Hour]:
    """The 24 clock hours up to the one `now_ms` is in, oldest first; `counts` is keyed
    (hours since the epoch, outcome), an hour without a count is zeros."""
    last = now_ms // HOUR_MS
    return [Hour(h * HOUR_MS, *(counts.get((h, str(o)), 0) for _, o in LAYERS))
            for h in range(last - HOURS + 1, last + 1)]


def totals(series: Sequence[Hour]) -> Hour:
    """The sums over the series (start_ms: its first hour's)."""
    return Hour(series[0].start_ms if series else 0,
                sum(h.delivered for h in series), sum(h.retried for h in series),
                sum(h.dead_lettered for h in series))


def summary(series: Sequence[Hour]) -> str:
    """The chart in words: "Last 24 hours: 5 delivered, 2 retried, 1 dead-lettered"."""
    t = totals(series)
    return (f"Last 24 hours: {t.delivered} delivered, {t.retried} retried, "
            f"{t.dead_lettered} dead-lettered")


def chart_svg(series: Sequence[Hour], css_class: str = "chart") -> Markup:
    """Stacked bars, one per hour, scaled to the busiest hour; the totals in its
    aria-label and <title>, each bar's counts in its own <title> (a tooltip)."""
    label = summary(series)
    peak = max((h.total for h in series), default=0)
    width = len(series) * (BAR_W + GAP_W) - GAP_W
    parts = [Markup('<svg class="{}" role="img" viewBox="0 0 {} {}" aria-label="{}">'
                    '<title>{}</title>').format(css_class, max(width, 0), HEIGHT, label, label),
             Markup('<line class="axis" x1="0" y1="{}" x2="{}" y2="{}"/>').format(
                 HEIGHT - 0.5, max(width, 0), HEIGHT - 0.5)]
    for i, hour in enumerate(series):
        x = i * (BAR_W + GAP_W)
        at = datetime.fromtimestamp(hour.start_ms / 1000, UTC).strftime("%H:00")
        parts.append(Markup('<g class="hour"><title>{} UTC: {} delivered, {} retried, '
                            '{} dead-lettered</title>').format(
            at, hour.delivered, hour.retried, hour.dead_lettered))
        y = float(HEIGHT)
        for layer, _ in LAYERS:
            count: int = getattr(hour, layer)
            if count and peak:
                h = HEIGHT * count / peak
                y -= h
                parts.append(Markup('<rect class="{}" x="{}" y="{}" width="{}" height="{}"/>')
                             .format(layer, x, round(y, 2), BAR_W, round(h, 2)))
        parts.append(Markup("</g>"))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
