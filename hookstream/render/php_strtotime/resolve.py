"""timelib_fill_holes and timelib_update_ts: the scanned fields, completed from "now" and
moved by their relative parts, as one instant."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from hookstream.render.php_strtotime.fields import (
    DAY_OF_WEEK_IN_MONTH,
    FIRST_DAY_OF_MONTH,
    LAST_DAY_OF_MONTH,
    LAST_DAY_OF_WEEK_IN_MONTH,
    SPECIAL_WEEKDAY,
    Fields,
    ParseError,
)
from hookstream.render.php_strtotime.zones import wall_clock

__all__ = ["resolve"]

_EPOCH = datetime(1970, 1, 1)


class _Clock:
    """The calendar fields timelib computes with, any of them out of range until
    normalised (a 30th of February, an hour 24)."""

    def __init__(self, y: int, m: int, d: int, h: int, i: int, s: int, us: int) -> None:
        self.y, self.m, self.d, self.h, self.i, self.s, self.us = y, m, d, h, i, s, us

    def days(self) -> int:
        """Days since 1970-01-01 of y-m-1 plus d - 1 (Hinnant's days_from_civil)."""
        y, m = self.y - (self.m <= 2), self.m
        era = y // 400  # Python's // floors: no adjustment for negative years
        yoe = y - era * 400
        doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5
        return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468 + self.d - 1

    def dow(self) -> int:
        return (self.days() + 4) % 7  # 1970-01-01 was a Thursday; 0 is Sunday

    def normalize(self) -> None:
        """timelib_do_normalize: carry each field into the next, then the months, then
        the days into months (2025-02-30 is March 2nd)."""
        carry, self.us = divmod(self.us, 1_000_000)
        carry, self.s = divmod(self.s + carry, 60)
        carry, self.i = divmod(self.i + carry, 60)
        carry, self.h = divmod(self.h + carry, 24)
        self.d += carry
        self.y, month = divmod(self.y * 12 + self.m - 1, 12)
        self.m = month + 1
        days = self.days()
        z = days + 719468  # Hinnant's civil_from_days
        era = z // 146097
        doe = z - era * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy + 2) // 153
        self.d = doy - (153 * mp + 2) // 5 + 1
        self.m = mp + 3 if mp < 10 else mp - 9
        self.y = yoe + era * 400 + (self.m <= 2)


def _cdiv(a: int, b: int) -> int:
    """C's integer division, rounding towards zero."""
    return -(-a // b) if (a < 0) != (b < 0) else a // b


def _weekday(c: _Clock, f: Fields) -> None:
    """do_adjust_for_weekday."""
    rel = f.relative
    dow, weekday = c.dow(), rel.weekday
    if rel.weekday_behavior == 2:  # "monday this week": within the week (Monday first)
        if dow == 0 and weekday != 0:
            weekday -= 7
        if weekday == 0 and dow != 0:
            weekday = 7
        c.d += weekday - dow
        return
    difference = weekday - dow
    if (rel.d < 0 and difference < 0) or (rel.d >= 0 and difference <= -rel.weekday_behavior):
        difference += 7
    c.d += difference if weekday >= 0 else -(7 - (abs(weekday) - dow))


def _business_days(c: _Clock, count: int) -> None:
    """do_adjust_special_weekday: `count` weekdays ("+3 weekdays"), weekends skipped."""
    dow = c.dow()
    c.d += _cdiv(count, 5) * 7
    rem = count - _cdiv(count, 5) * 5
    if count > 0:
        if rem == 0:
            c.d -= 2 if dow == 0 else 1 if dow == 6 else 0
        elif dow == 6:
            c.d += 1
        elif dow + rem > 5:
            c.d += 2
    elif rem == 0:
        c.d += 2 if dow == 6 else 1 if dow == 0 else 0
    elif dow == 0:
        c.d -= 1
    elif dow + rem < 1:
        c.d -= 2
    c.d += rem


def _first_last_day(c: _Clock, which: int) -> None:
    if which == FIRST_DAY_OF_MONTH:
        c.d = 1
    elif which == LAST_DAY_OF_MONTH:
        c.d, c.m = 0, c.m + 1


def _apply_relative(c: _Clock, f: Fields) -> None:
    """timelib_update_ts' three steps: do_adjust_special_early, do_adjust_relative,
    do_adjust_special."""
    rel = copy.copy(f.relative)
    if rel.have_special and rel.special_type in (DAY_OF_WEEK_IN_MONTH,
                                                 LAST_DAY_OF_WEEK_IN_MONTH):
        c.d = 1
        c.m += rel.m + (rel.special_type == LAST_DAY_OF_WEEK_IN_MONTH)
        rel.m = 0
    _first_last_day(c, rel.first_last_day_of)
    c.normalize()
    if rel.have_weekday:
        _weekday(c, f)
    c.normalize()
    if f.have_relative:
        c.us += rel.us
        c.s, c.i, c.h = c.s + rel.s, c.i + rel.i, c.h + rel.h
        c.d, c.m, c.y = c.d + rel.d, c.m + rel.m, c.y + rel.y
    _first_last_day(c, rel.first_last_day_of)
    c.normalize()
    if rel.have_special and rel.special_type == SPECIAL_WEEKDAY:
        _business_days(c, rel.special_amount)
    c.normalize()


def resolve(fields: Fields, now_s: float, default: tzinfo) -> datetime:
    """The instant `fields` name, "now" being `now_s` in the zone `default`."""
    now = datetime.fromtimestamp(now_s, default)
    f = fields
    if f.have_date and not f.have_time:
        f = copy.copy(f)
        f.h, f.i, f.s, f.us = 0, 0, 0, 0
    any_set = any(v is not None for v in (f.y, f.m, f.d, f.h, f.i, f.s))
    us = f.us if f.us is not None else 0 if any_set else now.microsecond

    def pick(value: int | None, fallback: int) -> int:
        return fallback if value is None else value

    clock = _Clock(pick(f.y, now.year), pick(f.m, now.month), pick(f.d, now.day),
                   pick(f.h, now.hour), pick(f.i, now.minute), pick(f.s, now.second), us)
    _apply_relative(clock, f)
    seconds = clock.days() * 86400 + clock.h * 3600 + clock.i * 60 + clock.s
    try:
        local = _EPOCH + timedelta(seconds=seconds, microseconds=clock.us)
        if f.zone is None or isinstance(f.zone, ZoneInfo):
            return wall_clock(local, f.zone or default, named=f.zone is not None)
        zone = timezone(timedelta(seconds=f.zone)) if isinstance(f.zone, int) else f.zone
        offset = zone.utcoffset(None) or timedelta(0)
        return (local - offset).replace(tzinfo=UTC).astimezone(zone)
    except (OverflowError, ValueError) as e:  # beyond Python: years 1-9999, offsets < 24 h
        raise ParseError("date or offset out of range") from e
