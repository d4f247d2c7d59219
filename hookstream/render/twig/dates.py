"""Twig's date conversion (`date` filter and function) with PHP's DateTime parsing
(php_strtotime: every form PHP reads), and PHP's time zone rule: the result is always in
the time zone given to the filter, else in the instance's time zone (GLPI's setting)."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookstream.render.php_date import format_date
from hookstream.render.php_strtotime import ParseError, strtotime, wall_clock
from hookstream.render.twig.php import PhpError, to_str

__all__ = ["format_date", "to_datetime", "zone"]

# GLPI's own dates ("2025-11-04 10:30:00"), read without the full parser; anything else, or
# a date to roll over ("2025-02-30"), goes to php_strtotime.
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2}|UTC|GMT)?\Z", re.I)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def zone(name: Any) -> tzinfo:
    try:
        return _zone("UTC" if to_str(name).upper() == "UTC" else to_str(name))
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise PhpError("unknown or bad time zone") from e


@functools.lru_cache(maxsize=4096)
def _absolute(text: str, default: tzinfo, target: tzinfo) -> datetime | None:
    """An ISO date (GLPI's own) in `target`, None for any other text; cached: the same
    dates recur across the webhooks of an event and across events."""
    found = _ISO.match(text.strip())
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    try:
        parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                          int(second or 0), int((fraction or "0")[:6].ljust(6, "0")))
    except ValueError:
        return None  # out of range: PHP rolls it over
    if offset is None:
        return wall_clock(parsed, default).astimezone(target)
    return parsed.replace(tzinfo=_offset(offset)).astimezone(target)


def _offset(text: str) -> tzinfo:
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return fixed_offset(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _parse(text: str, now_s: float, default: tzinfo) -> datetime:
    try:
        return strtotime(text, now_s, default)
    except ParseError as e:
        raise PhpError("failed to parse the date") from e


def to_datetime(value: Any, now_s: float, default_zone: str, timezone: Any = None) -> datetime:
    """twig_date_converter: `value` (null or 'now', a timestamp, a date string or a date)
    as a date in `timezone`, else in `default_zone`."""
    default = zone(default_zone)
    target = default if timezone is None or timezone is False else zone(timezone)
    if isinstance(value, datetime):
        when = value
    elif value is None:
        when = datetime.fromtimestamp(now_s, default)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and float(
            value).is_integer():
        when = datetime.fromtimestamp(int(value), UTC)
    else:
        text = to_str(value)
        if timezone is not False and (cached := _absolute(text, default, target)) is not None:
            return cached
        if re.fullmatch(r"-?\d+", text):
            when = datetime.fromtimestamp(int(text), UTC)
        else:
            when = _parse(text, now_s, default)
    return when if timezone is False else when.astimezone(target)
