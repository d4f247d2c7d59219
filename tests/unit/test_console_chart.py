"""The webhook picture's pure core: 24 hourly buckets from the log store's counts, the SVG
drawn from them, and the circuit state read from the latest attempt."""

from __future__ import annotations

import re

import pytest

from connectors.console.chart import HEIGHT, HOUR_MS, Hour, chart_svg, hourly_series, totals
from connectors.console.picture import MAX_OPEN_MS, CircuitSeen, circuit_seen
from connectors.logstore.activity import Latest, first_hour

NOW = 1_800_000_000_000 + 1234  # some time into an hour
THIS_HOUR = NOW // HOUR_MS


def test_24_buckets_oldest_first_hours_without_data_are_zeros() -> None:
    series = hourly_series({(THIS_HOUR, "delivered"): 3, (THIS_HOUR - 23, "retry_scheduled"): 2,
                            (THIS_HOUR - 5, "dead_lettered"): 1,
                            (THIS_HOUR - 24, "delivered"): 9,  # before the 24 hours
                            (THIS_HOUR - 1, "circuit_open"): 4}, NOW)  # not charted
    assert len(series) == 24
    assert [h.start_ms for h in series] == [(THIS_HOUR - 23 + i) * HOUR_MS for i in range(24)]
    assert series[0].start_ms // HOUR_MS == first_hour(NOW)  # the query's window, the same
    assert series[0] == Hour(series[0].start_ms, 0, 2, 0)
    assert series[-1] == Hour(THIS_HOUR * HOUR_MS, 3, 0, 0)
    assert series[18] == Hour(series[18].start_ms, 0, 0, 1)
    assert sum(h.total for h in series) == 6
    assert all(h.total == 0 for i, h in enumerate(series) if i not in (0, 18, 23))
    assert hourly_series({}, NOW) == [Hour((THIS_HOUR - 23 + i) * HOUR_MS) for i in range(24)]
    assert totals(series) == Hour(series[0].start_ms, 3, 2, 1)


def test_the_svg_has_a_title_and_an_aria_label_with_the_totals_and_stacked_bars() -> None:
    series = hourly_series({(THIS_HOUR, "delivered"): 4, (THIS_HOUR, "retry_scheduled"): 2,
                            (THIS_HOUR, "dead_lettered"): 2,
                            (THIS_HOUR - 1, "delivered"): 1}, NOW)
    svg = str(chart_svg(series))
    label = "Last 24 hours: 5 delivered, 2 retried, 2 dead-lettered"
    assert svg.startswith('<svg class="chart" role="img"') and svg.endswith("</svg>")
    assert f'aria-label="{label}"' in svg and f"<title>{label}</title>" in svg
    assert svg.count('<g class="hour">') == 24
    bars = re.findall(r'<rect class="(\w+)" x="(\d+)" y="([\d.]+)" width="\d+" '
                      r'height="([\d.]+)"/>', svg)
    # the busiest hour (8) fills the height, stacked delivered, retried, dead-lettered
    last = [(c, float(y), float(h)) for c, x, y, h in bars if x == str(23 * 8)]
    assert last == [("delivered", HEIGHT / 2, HEIGHT / 2), ("retried", HEIGHT / 4, HEIGHT / 4),
                    ("dead_lettered", 0.0, HEIGHT / 4)]
    assert [c for c, x, _, _ in bars if x == str(22 * 8)] == ["delivered"]
    assert len(bars) == 4  # empty hours draw nothing
    assert "style=" not in svg and "<script" not in svg  # the console's CSP allows neither


def test_an_empty_day_draws_no_bars_and_says_zeros() -> None:
    svg = str(chart_svg(hourly_series({}, NOW), "chart chart-large"))
    assert 'class="chart chart-large"' in svg and "<rect" not in svg
    assert 'aria-label="Last 24 hours: 0 delivered, 0 retried, 0 dead-lettered"' in svg


def latest(outcome: str | None, at: int | None) -> Latest:
    return Latest("d1", NOW - 10, "waiting", None, outcome, at)


@pytest.mark.parametrize("seen, expected", [
    (None, CircuitSeen("unknown", None)),
    (latest(None, None), CircuitSeen("unknown", None)),
    (latest("circuit_open", NOW - 1000), CircuitSeen("open", NOW - 1000)),
    (latest("circuit_open", NOW - MAX_OPEN_MS + 1), CircuitSeen("open", NOW - MAX_OPEN_MS + 1)),
    (latest("circuit_open", NOW - MAX_OPEN_MS), CircuitSeen("half-open", NOW - MAX_OPEN_MS)),
    (latest("retry_scheduled", NOW - 5), CircuitSeen("closed", NOW - 5)),
    (latest("delivered", NOW - 5), CircuitSeen("closed", NOW - 5)),
])
def test_the_circuit_is_read_from_the_latest_attempt(seen: Latest | None,
                                                     expected: CircuitSeen) -> None:
    assert circuit_seen(seen, NOW) == expected
