"""Twig's date conversion (`date` filter and function) with PHP's DateTime parsing for the
forms GLPI data and admins use, and PHP's time zone rule: the result is always in the time
zone given to the filter, else in the instance's time zone (GLPI's setting)."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hookstream.render.php_date import format_date
from hookstream.render.twig.php import PhpError, to_str

__all__ = ["format_date", "to_datetime", "zone"]

_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2}|UTC|GMT)?\Z", re.I)
_RELATIVE = re.compile(r"([+-]?\d+)\s*(sec|second|min|minute|hour|day|week|fortnight)s?"
                       r"(\s+ago)?", re.I)
_UNIT_S = {"sec": 1, "second": 1, "min": 60, "minute": 60, "hour": 3600, "day": 86400,
           "week": 604800, "fortnight": 1209600}
_DAYS = {"today": 0, "midnight": 0, "tomorrow": 1, "yesterday": -1}


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def zone(name: Any) -> tzinfo:
    try:
        return _zone("UTC" if to_str(name).upper() == "UTC" else to_str(name))
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise PhpError("unknown or bad time zone") from e


def _offset(text: str) -> tzinfo:
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    from datetime import timezone
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


@functools.lru_cache(maxsize=4096)
def _absolute(text: str, default: tzinfo, target: tzinfo) -> datetime | None:
    """An ISO date (GLPI's own) in `target`; cached: the same dates recur across the
    webhooks of an event and across events."""
    found = _ISO.match(text.strip())
    return None if found is None else _iso(found, default).astimezone(target)


def _parse(text: str, now_s: float, default: tzinfo) -> datetime:
    value = text.strip()
    found = _ISO.match(value)
    if found is not None:
        return _iso(found, default)
    now = datetime.fromtimestamp(now_s, default)
    lower = value.lower()
    if lower in ("", "now"):
        return now
    if lower in _DAYS:
        return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            days=_DAYS[lower])
    if value.startswith("@") and re.fullmatch(r"@-?\d+", value):
        return datetime.fromtimestamp(int(value[1:]), UTC)
    relative = _RELATIVE.fullmatch(value)
    if relative:
        seconds = int(relative[1]) * _UNIT_S[relative[2].lower()]
        return now + timedelta(seconds=-seconds if relative[3] else seconds)
    raise PhpError("failed to parse the date")


def _iso(found: re.Match[str], default: tzinfo) -> datetime:
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    try:
        parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                          int(second or 0), int((fraction or "0")[:6].ljust(6, "0")))
    except ValueError as e:
        raise PhpError("failed to parse the date") from e
    return parsed.replace(tzinfo=_offset(offset)) if offset else _php_local(parsed, default)


def _php_local(naive: datetime, zone: tzinfo) -> datetime:
    """PHP's (timelib's) reading of a wall-clock time in `zone` around DST changes: a time
    the change skips takes the offset before it (02:30 becomes 03:30); a time it repeats
    takes the offset in effect at the instant that reads the same in UTC (the later of the
    two east of Greenwich, the earlier west of it). Checked against PHP 8.2 every quarter
    hour of 2023-2026 in a dozen zones."""
    when = naive.replace(tzinfo=zone)
    repeated = when.replace(fold=1)
    if repeated.astimezone(UTC) > when.astimezone(UTC):  # the change repeats this time
        in_effect = naive.replace(tzinfo=UTC).astimezone(zone)
        when = repeated if in_effect.utcoffset() == repeated.utcoffset() else when
    return when.astimezone(UTC).astimezone(zone)  # a skipped time shown after the change


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
