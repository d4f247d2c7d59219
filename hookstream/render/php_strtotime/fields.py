"""The fields timelib's scanner sets (timelib_time, timelib_rel_time), and its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo

__all__ = ["Fields", "ParseError", "Relative"]

SPECIAL_WEEKDAY, DAY_OF_WEEK_IN_MONTH, LAST_DAY_OF_WEEK_IN_MONTH = 1, 2, 3
FIRST_DAY_OF_MONTH, LAST_DAY_OF_MONTH = 1, 2

class ParseError(Exception):
    """timelib reported an error: PHP's DateTime refuses the text."""


@dataclass
class Relative:
    y: int = 0
    m: int = 0
    d: int = 0
    h: int = 0
    i: int = 0
    s: int = 0
    us: int = 0
    weekday: int = 0
    weekday_behavior: int = 0
    have_weekday: bool = False
    special_type: int = 0
    special_amount: int = 0
    have_special: bool = False
    first_last_day_of: int = 0


@dataclass
class Fields:
    """timelib_time as the scanner leaves it; None is timelib's TIMELIB_UNSET."""
    y: int | None = None
    m: int | None = None
    d: int | None = None
    h: int | None = None
    i: int | None = None
    s: int | None = None
    us: int | None = None
    # an offset in seconds (PHP allows a day and more), an Abbreviation or an identifier
    zone: tzinfo | int | None = None
    have_time: int = 0
    have_date: bool = False
    have_zone: int = 0
    have_relative: bool = False
    relative: Relative = field(default_factory=Relative)

    def unhave_time(self) -> None:
        self.have_time, self.h, self.i, self.s, self.us = 0, 0, 0, 0, 0

    def have_time_once(self) -> None:
        if self.have_time:
            raise ParseError("Double time specification")
        self.have_time, self.h, self.i, self.s, self.us = 1, 0, 0, 0, 0

    def have_date_once(self) -> None:
        if self.have_date:
            raise ParseError("Double date specification")
        self.have_date = True
