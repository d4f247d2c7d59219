"""php_strtotime's own contract (PHP's answers are tests/differential/test_php_dates.py's):
"now" is an argument, scans are cached without being changed by use, refusals raise."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest

from hookstream.render.php_strtotime import ParseError, strtotime
from hookstream.render.twig.dates import to_datetime
from hookstream.render.twig.php import PhpError

NOW_S = 1_762_245_332  # 2025-11-04 08:35:32 UTC


@pytest.mark.parametrize("text, seconds", [("+1 day", 86_400), ("2 hours ago", -7_200),
                                           ("now", 0), ("+1 week 1 sec", 604_801)])
def test_relative_to_the_given_now(text: str, seconds: int) -> None:
    for now_s in (NOW_S, NOW_S + 12_345):
        assert strtotime(text, now_s, UTC).timestamp() == now_s + seconds


def test_a_cached_scan_is_not_changed_by_its_use() -> None:
    texts = ["2025-11-04", "first monday of january 2026", "last day of next month",
             "2025-11-04 10:30 +02:00 +1 day", "+3 weekdays", "monday next week"]
    zones = [UTC, ZoneInfo("Europe/Paris")]
    first = [strtotime(t, NOW_S, z) for t in texts for z in zones]
    assert [strtotime(t, NOW_S, z) for t in texts for z in zones] == first


def test_the_zone_named_in_the_text_wins() -> None:
    paris = strtotime("2025-11-04 10:30 Europe/Paris", NOW_S, ZoneInfo("America/New_York"))
    assert (paris.tzinfo, paris.hour) == (ZoneInfo("Europe/Paris"), 10)


@pytest.mark.parametrize("text", ["not a date", "31/12/2025", "10:30 foo", "UTC UTC UTC"])
def test_refusals_raise(text: str) -> None:
    with pytest.raises(ParseError):
        strtotime(text, NOW_S, UTC)
    with pytest.raises(PhpError, match="failed to parse the date"):
        to_datetime(text, NOW_S, "UTC")
