"""PHP's date formatting: the format letters of `date()` and `DateTime::format`, for Twig's
`date` filter."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import datetime

__all__ = ["format_date"]


_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]


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
    "Y": lambda d: f"{d.year:04d}", "y": lambda d: f"{d.year % 100:02d}",
    "a": lambda d: "am" if d.hour < 12 else "pm", "A": lambda d: "AM" if d.hour < 12 else "PM",
    "g": lambda d: str(d.hour % 12 or 12), "G": lambda d: str(d.hour),
    "h": lambda d: f"{d.hour % 12 or 12:02d}", "H": lambda d: f"{d.hour:02d}",
    "i": lambda d: f"{d.minute:02d}", "s": lambda d: f"{d.second:02d}",
    "u": lambda d: f"{d.microsecond:06d}", "v": lambda d: f"{d.microsecond // 1000:03d}",
    "e": lambda d: getattr(d.tzinfo, "key", None) or _offset(d, True),
    "T": lambda d: (getattr(d.tzinfo, "key", None) and d.tzname()) or "GMT" + _offset(d, False),
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
