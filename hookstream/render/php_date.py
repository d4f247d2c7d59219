"""PHP's date formatting (Twig's `date` filter) and Twig's date parsing, for templates."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2.runtime import Undefined

__all__ = ["format_date", "to_datetime"]


_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_RELATIVE = re.compile(r"([+-]?\d+)\s*(second|sec|minute|min|hour|day|week)s?(\s+ago)?")
_RELATIVE_S = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "day": 86400,
               "week": 604800}


def _offset(dt: datetime, colon: bool) -> str:
    seconds = int(dt.utcoffset().total_seconds()) if dt.utcoffset() else 0  # type: ignore[union-attr]
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"


def _suffix(day: int) -> str:
    if day in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


_DATE_CODES: dict[str, Callable[[datetime], str]] = {
    "d": lambda d: f"{d.day:02d}", "D": lambda d: _DAYS[d.weekday()][:3],
    "j": lambda d: str(d.day), "l": lambda d: _DAYS[d.weekday()],
    "N": lambda d: str(d.isoweekday()), "S": lambda d: _suffix(d.day),
    "w": lambda d: str(d.isoweekday() % 7), "z": lambda d: str(d.timetuple().tm_yday - 1),
    "W": lambda d: f"{d.isocalendar()[1]:02d}", "F": lambda d: _MONTHS[d.month - 1],
    "m": lambda d: f"{d.month:02d}", "M": lambda d: _MONTHS[d.month - 1][:3],
    "n": lambda d: str(d.month), "t": lambda d: str(calendar.monthrange(d.year, d.month)[1]),
    "L": lambda d: "1" if calendar.isleap(d.year) else "0", "o": lambda d: str(d.isocalendar()[0]),
    "Y": lambda d: str(d.year), "y": lambda d: f"{d.year % 100:02d}",
    "a": lambda d: "am" if d.hour < 12 else "pm", "A": lambda d: "AM" if d.hour < 12 else "PM",
    "g": lambda d: str(d.hour % 12 or 12), "G": lambda d: str(d.hour),
    "h": lambda d: f"{d.hour % 12 or 12:02d}", "H": lambda d: f"{d.hour:02d}",
    "i": lambda d: f"{d.minute:02d}", "s": lambda d: f"{d.second:02d}",
    "u": lambda d: f"{d.microsecond:06d}", "v": lambda d: f"{d.microsecond // 1000:03d}",
    "e": lambda d: getattr(d.tzinfo, "key", None) or _offset(d, True),
    "T": lambda d: (getattr(d.tzinfo, "key", None) and d.tzname()) or _offset(d, True),
    "P": lambda d: _offset(d, True), "O": lambda d: _offset(d, False),
    "p": lambda d: "Z" if not d.utcoffset() else _offset(d, True),
    "Z": lambda d: str(int(d.utcoffset().total_seconds()) if d.utcoffset() else 0),  # type: ignore[union-attr]
    "c": lambda d: format_date(d, "Y-m-d\\TH:i:sP"),
    "r": lambda d: format_date(d, "D, d M Y H:i:s O"),
    "U": lambda d: str(int(d.timestamp())),
}


def format_date(dt: datetime, fmt: str) -> str:
    """PHP's `date()` format: each letter a field, a backslash escapes the next character."""
    out: list[str] = []
    escaped = False
    for char in fmt:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            code = _DATE_CODES.get(char)
            out.append(code(dt) if code else char)
    return "".join(out)


def to_datetime(value: Any, now_s: float, timezone: Any = None) -> datetime:
    """Twig's date converter. Dates with an offset keep it (GLPI wrote them in its own
    timezone); naive dates, timestamps and `now` are UTC unless a timezone is given.
    `now_s` is the render's clock, for `now` and relative dates."""
    now = datetime.fromtimestamp(now_s, UTC)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif value is None or isinstance(value, Undefined) or value in ("", "now"):
        dt = now
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        text = value.strip()
        relative = _RELATIVE.fullmatch(text)
        if re.fullmatch(r"-?\d+", text):
            dt = datetime.fromtimestamp(int(text), UTC)
        elif relative:
            amount = int(relative[1]) * _RELATIVE_S[relative[2]]
            dt = now + timedelta(seconds=-amount if relative[3] else amount)
        elif text in ("today", "midnight", "tomorrow", "yesterday"):
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            dt = day + timedelta(days={"tomorrow": 1, "yesterday": -1}.get(text, 0))
        else:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("unparseable date") from None
            dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    else:
        raise TypeError("not a date")
    if isinstance(timezone, str):
        dt = dt.astimezone(ZoneInfo(timezone))
    return dt
