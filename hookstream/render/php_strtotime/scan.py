"""timelib's scanner (parse_date.re, timelib 2022.12 as in PHP 8.2): the text to the fields
it sets (date, time, zone, relative parts), or the error that makes PHP refuse it.

Each action reads its token as timelib's does, through the same little readers
(timelib_get_nr, timelib_meridian...), so that their quirks carry over: "Back of 7pm" (a
capital B) reads as "front of", "2025-02-30" is a date to roll over, not an error."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, tzinfo

from hookstream.render.php_strtotime.grammar import RULES
from hookstream.render.php_strtotime.zones import abbreviation, zone_id

__all__ = ["Fields", "ParseError", "Relative", "scan"]

SPECIAL_WEEKDAY, DAY_OF_WEEK_IN_MONTH, LAST_DAY_OF_WEEK_IN_MONTH = 1, 2, 3
FIRST_DAY_OF_MONTH, LAST_DAY_OF_MONTH = 1, 2

_RELTEXT = {"first": 1, "next": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
            "sixth": 6, "seventh": 7, "eight": 8, "eighth": 8, "ninth": 9, "tenth": 10,
            "eleventh": 11, "twelfth": 12, "last": -1, "previous": -1, "this": 0}
_MONTHS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
           "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12, "i": 1, "ii": 2, "iii": 3,
           "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10, "xi": 11,
           "xii": 12, "january": 1, "february": 2, "march": 3, "april": 4, "june": 6,
           "july": 7, "august": 8, "september": 9, "october": 10, "november": 11,
           "december": 12}
_DAY_NUMBERS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# timelib_relunit_lookup: a word to (field, multiplier); weekdays to ("weekday", number).
_UNITS: dict[str, tuple[str, int]] = {
    **{w: ("us", 1000) for w in ("ms", "msec", "msecs", "millisecond", "milliseconds")},
    **{w: ("us", 1) for w in ("µs", "usec", "usecs", "µsec", "µsecs", "microsecond",
                              "microseconds")},
    **{w: ("s", 1) for w in ("sec", "secs", "second", "seconds")},
    **{w: ("i", 1) for w in ("min", "mins", "minute", "minutes")},
    **{w: ("h", 1) for w in ("hour", "hours")},
    **{w: ("d", 1) for w in ("day", "days")},
    **{w: ("d", 7) for w in ("week", "weeks")},
    **{w: ("d", 14) for w in ("fortnight", "fortnights", "forthnight", "forthnights")},
    **{w: ("m", 1) for w in ("month", "months")},
    **{w: ("y", 1) for w in ("year", "years")},
    **{full + suffix: ("weekday", n) for abbr, n in _DAY_NUMBERS.items()
       for full in (abbr, next(d for d in ("sunday", "monday", "tuesday", "wednesday",
                                            "thursday", "friday", "saturday")
                               if d.startswith(abbr)))
       for suffix in ("", "s") if not (suffix and full == abbr)},
    "weekday": ("special", SPECIAL_WEEKDAY), "weekdays": ("special", SPECIAL_WEEKDAY),
}
_UNIT_END = "\0 ,\t;:/.-()"


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


class _Token:
    """A token and timelib's readers over it (a C string: NUL past its end)."""

    def __init__(self, text: str) -> None:
        self.text = text.split("\0", 1)[0]
        self.pos = 0

    def char(self, offset: int = 0) -> str:
        at = self.pos + offset
        return self.text[at] if at < len(self.text) else "\0"

    def more(self) -> bool:
        return self.pos < len(self.text)

    def nr(self, max_length: int) -> int | None:
        return self.nr_ex(max_length)[0]

    def nr_ex(self, max_length: int) -> tuple[int | None, int]:
        """timelib_get_nr_ex: skip to a digit, read at most `max_length` digits."""
        while not self.char().isdigit() or not self.char().isascii():
            if not self.more():
                return None, 0
            self.pos += 1
        found = re.compile(f"[0-9]{{1,{max_length}}}").match(self.text, self.pos)
        assert found is not None
        self.pos = found.end()
        return int(found[0]), len(found[0])

    def signed_nr(self, max_length: int) -> int:
        """timelib_get_signed_nr: signs then digits; every '-' flips the sign."""
        while self.char() not in "+-" and not ("0" <= self.char() <= "9"):
            if not self.more():
                raise ParseError("Found unexpected data")
            self.pos += 1
        sign = 1
        while self.char() in "+-" and self.more():
            sign = -sign if self.char() == "-" else sign
            self.pos += 1
        while not ("0" <= self.char() <= "9"):
            if not self.more():
                raise ParseError("Found unexpected data")
            self.pos += 1
        start = self.pos
        while "0" <= self.char() <= "9" and self.pos - start < max_length:
            self.pos += 1
        value = sign * int(self.text[start:self.pos])
        if not -2**63 <= value < 2**63:
            raise ParseError("Number out of range")
        return value

    def frac_nr(self) -> int | None:
        """timelib_get_frac_nr: '.123' as microseconds (the first of '.' or ':' starts it)."""
        while self.char() not in ".:" and not ("0" <= self.char() <= "9"):
            if not self.more():
                return None
            self.pos += 1
        begin = self.pos
        while self.char() in ".:" and self.more() or "0" <= self.char() <= "9":
            self.pos += 1
        digits = re.match(r"[0-9]*(?:\.[0-9]*)?", self.text[begin + 1:self.pos])
        number = float(digits[0]) if digits and digits[0] not in ("", ".") else 0.0
        return int(number * 10 ** (7 - (self.pos - begin)))

    def skip_day_suffix(self) -> None:
        if self.char() in " \t\n\v\f\r":
            return
        if self.text[self.pos:self.pos + 2].lower() in ("nd", "rd", "st", "th"):
            self.pos += 2

    def word(self, letters: str = "A-Za-z") -> str:
        found = re.compile(f"[{letters}]*").match(self.text, self.pos)
        assert found is not None
        self.pos = found.end()
        return found[0]

    def month(self) -> int:
        """timelib_get_month: 0 when the word is not a month."""
        while self.char() in " \t-./" and self.more():
            self.pos += 1
        return _MONTHS.get(self.word().lower(), 0)

    def relative_text(self) -> tuple[int, int]:
        """timelib_get_relative_text: ("next" ->) the amount and the weekday behaviour."""
        while self.char() in " \t-/" and self.more():
            self.pos += 1
        word = self.word().lower()
        return _RELTEXT.get(word, 0), 1 if word == "this" else 0

    def eat_spaces(self) -> None:
        while self.char() in " \t\u00a0\u202f" and self.more():
            self.pos += 1

    def meridian(self, hour: int) -> int:
        """timelib_meridian: the hours to add for "am"/"pm"."""
        while self.char() not in "AaPp\0":
            self.pos += 1
        correction = (-12 if hour == 12 else 0) if self.char() in "Aa" else (
            12 if hour != 12 else 0)
        self.pos += 1
        for expected in (".", "Mm", "."):
            if self.char() in expected and self.more():
                self.pos += 1
        return correction

    def unit(self) -> tuple[str, int] | None:
        start = self.pos
        while self.char() not in _UNIT_END:
            self.pos += 1
        return _UNITS.get(self.text[start:self.pos].lower())


def _process_year(year: int | None, length: int) -> int | None:
    """TIMELIB_PROCESS_YEAR: a year of one or two digits is 1970-2069."""
    if year is None or length >= 4 or year >= 100:
        return year
    return year + (2000 if year < 70 else 1900)


def _zone(t: Fields, token: _Token) -> None:
    """timelib_parse_zone: an offset ("+02:00", "GMT-5"), an abbreviation or an identifier."""
    while token.char() in " \t(" and token.more():
        token.pos += 1
    if token.text.startswith(("GMT+", "GMT-"), token.pos):
        token.pos += 3
    if token.char() in "+-":
        sign = -1 if token.char() == "-" else 1
        token.pos += 1
        t.zone = _offset(token.word("0-9:"), sign)
    else:
        word = token.word("A-Za-z0-9/_+-")
        t.zone = abbreviation(word)
        if t.zone is None or word == "UTC":
            t.zone = zone_id(word) or t.zone
        if t.zone is None:
            raise ParseError("The timezone could not be found in the database")
    while token.char() == ")":
        token.pos += 1


def _offset(digits: str, sign: int) -> int:
    """timelib_parse_tz_cor: H, HH, H:M, HH:M, HHMM, HH:MM, HHMMSS or HH:MM:SS."""
    def lead(text: str) -> int:
        found = re.match(r"[0-9]*", text)
        return int(found[0]) if found and found[0] else 0

    n = len(digits)
    if n in (1, 2):
        seconds = lead(digits) * 3600
    elif n in (3, 4) and ":" in digits[1:3]:
        colon = digits.index(":", 1)
        seconds = lead(digits) * 3600 + lead(digits[colon + 1:]) * 60
    elif n in (3, 4):
        number = lead(digits)
        seconds = number // 100 * 3600 + number % 100 * 60
    elif n == 5 and digits[2] == ":":
        seconds = lead(digits) * 3600 + lead(digits[3:]) * 60
    elif n == 6:
        number = lead(digits)
        seconds = number // 10000 * 3600 + number // 100 % 100 * 60 + number % 100
    elif n == 8 and digits[2] == ":" and digits[5] == ":":
        seconds = lead(digits) * 3600 + lead(digits[3:]) * 60 + lead(digits[6:])
    else:
        raise ParseError("The timezone could not be found in the database")
    return sign * seconds


def _set_relative(t: Fields, token: _Token, amount: int, behavior: int,
                  keep_time: bool) -> None:
    """timelib_set_relative: `amount` of the unit word at the token's position."""
    unit = token.unit()
    if unit is None:
        return
    rel = t.relative
    name, multiplier = unit
    if name == "weekday":
        t.have_relative = rel.have_weekday = True
        if not keep_time:
            t.unhave_time()
        rel.d += (amount - 1 if amount > 0 else amount) * 7
        rel.weekday, rel.weekday_behavior = multiplier, behavior
    elif name == "special":
        t.have_relative = rel.have_special = True
        if not keep_time:
            t.unhave_time()
        rel.special_type, rel.special_amount = multiplier, amount
    else:
        setattr(rel, name, getattr(rel, name) + amount * multiplier)


def _time(t: Fields, token: _Token, fraction: str = ".") -> None:
    """h[:i[:s[.frac]]], the time formats' common reading."""
    t.h = token.nr(2)
    if token.char() in ":." and token.more():
        t.i = token.nr(2)
        if token.char() in ":." and token.more():
            t.s = token.nr(2)
            if token.char() in fraction and token.more():
                t.us = token.frac_nr()


def _timestamp(t: Fields, token: _Token) -> None:
    t.have_relative = True
    t.have_date, t.d, t.m, t.y = False, 0, 0, 0
    t.unhave_time()
    if _have_zone(t):
        return
    negative = token.char(1) == "-"
    seconds = token.signed_nr(24)
    if token.char() == ".":
        before = token.pos
        us = token.signed_nr(6)
        us = int(us * 10 ** (7 - (token.pos - before)))
        t.relative.us = -us if negative else us
    t.y, t.m, t.d, t.h, t.i, t.s, t.us = 1970, 1, 1, 0, 0, 0, 0
    t.relative.s += seconds
    t.zone = 0


def _have_zone(t: Fields) -> bool:
    """TIMELIB_HAVE_TZ: True when the token is to be skipped (a second zone: a warning)."""
    t.have_zone += 1
    if t.have_zone > 2:
        raise ParseError("Double timezone specification")
    return t.have_zone == 2


def _act(action: str, t: Fields, token: _Token) -> None:  # noqa: C901 - one branch a rule
    rel = t.relative
    match action:
        case "yesterday" | "tomorrow":
            t.have_relative = True
            t.unhave_time()
            rel.d = -1 if action == "yesterday" else 1
        case "now" | "skip":
            pass
        case "noon":
            t.unhave_time()
            t.have_time_once()
            t.h = 12
        case "midnight":
            t.unhave_time()
        case "timestamp" | "timestampms":
            _timestamp(t, token)
        case "firstlastdayof":  # PHP's timelib keeps the time here (timelib's own does not)
            t.have_relative = True
            rel.first_last_day_of = (LAST_DAY_OF_MONTH if token.char() in "lL"
                                     else FIRST_DAY_OF_MONTH)
        case "backfrontof":
            t.unhave_time()
            t.have_time_once()
            back = token.char() == "b"
            hour = token.nr(2) or 0
            t.h, t.i = (hour, 15) if back else (hour - 1, 45)
            if token.more():
                token.eat_spaces()
                t.h += token.meridian(t.h)
        case "weekdayof":
            t.have_relative = rel.have_special = True
            amount, behavior = token.relative_text()
            token.eat_spaces()
            if amount > 0:
                rel.special_type = DAY_OF_WEEK_IN_MONTH
                _set_relative(t, token, amount, 1, False)
            else:
                rel.special_type = LAST_DAY_OF_WEEK_IN_MONTH
                _set_relative(t, token, amount, behavior, False)
        case "time12" | "mssqltime":
            t.have_time_once()
            _time(t, token, ".:" if action == "mssqltime" else "")
            token.eat_spaces()
            t.h = (t.h or 0) + token.meridian(t.h or 0)
        case "time24":
            t.have_time_once()
            _time(t, token)
        case "gnunocolon":
            if t.have_time == 0:
                t.h, t.i, t.s = token.nr(2), token.nr(2), 0
            elif t.have_time == 1:
                t.y = token.nr(4)
            else:
                raise ParseError("Double time specification")
            t.have_time += 1
        case "iso8601nocolon":
            t.have_time_once()
            t.h, t.i, t.s = token.nr(2), token.nr(2), token.nr(2)
        case "american":
            t.have_date_once()
            t.m, t.d = token.nr(2), token.nr(2)
            if token.char() == "/":
                t.y = _process_year(*token.nr_ex(4))
        case "iso8601date4" | "iso8601datex":
            t.have_date_once()
            t.y = token.signed_nr(4 if action == "iso8601date4" else 19)
            t.m, t.d = token.nr(2), token.nr(2)
        case "iso8601date2" | "gnudateshort":
            t.have_date_once()
            year = token.nr_ex(4)
            t.m, t.d = token.nr(2), token.nr(2)
            t.y = _process_year(*year)
        case "gnudateshorter":
            t.have_date_once()
            year = token.nr_ex(4)
            t.m, t.d = token.nr(2), 1
            t.y = _process_year(*year)
        case "datefull":
            t.have_date_once()
            t.d = token.nr(2)
            token.skip_day_suffix()
            t.m = token.month()
            t.y = _process_year(*token.nr_ex(4))
        case "pointeddate4":
            t.have_date_once()
            t.d, t.m, t.y = token.nr(2), token.nr(2), token.nr(4)
        case "pointeddate2":
            t.have_date_once()
            t.d, t.m = token.nr(2), token.nr(2)
            t.y = _process_year(*token.nr_ex(2))
        case "datenoday":
            t.have_date_once()
            t.m = token.month()
            t.y, t.d = _process_year(*token.nr_ex(4)), 1
        case "datenodayrev":
            t.have_date_once()
            year = token.nr_ex(4)
            t.m, t.d, t.y = token.month(), 1, _process_year(*year)
        case "datetextual" | "pgtextshort":
            t.have_date_once()
            t.m, t.d = token.month(), token.nr(2)
            t.y = _process_year(*token.nr_ex(4))
        case "datenoyearrev":
            t.have_date_once()
            t.d = token.nr(2)
            token.skip_day_suffix()
            t.m = token.month()
        case "datenocolon":
            t.have_date_once()
            t.y, t.m, t.d = token.nr(4), token.nr(2), token.nr(2)
        case "xmlrpc":
            t.have_time_once()
            t.have_date_once()
            t.y, t.m, t.d = token.nr(4), token.nr(2), token.nr(2)
            t.h, t.i, t.s = token.nr(2), token.nr(2), token.nr(2)
            if token.char() == "." and token.more():
                t.us = token.frac_nr()
                if token.more():
                    _zone(t, token)
        case "pgydotd":
            t.have_date_once()
            year = token.nr_ex(4)
            t.d, t.m, t.y = token.nr(3), 1, _process_year(*year)
        case "isoweekday" | "isoweek":
            t.have_date_once()
            t.have_relative = True
            t.y, week = token.nr(4) or 0, token.nr(2) or 0
            day = (token.nr(1) or 0) if action == "isoweekday" else 1
            t.m, t.d = 1, 1
            rel.d = _daynr_from_weeknr(t.y, week, day)
        case "pgtextreverse":
            t.have_date_once()
            year = token.nr_ex(4)
            t.m, t.d, t.y = token.month(), token.nr(2), _process_year(*year)
        case "clf":
            t.have_time_once()
            t.have_date_once()
            t.d, t.m, t.y = token.nr(2), token.month(), token.nr(4)
            t.h, t.i, t.s = token.nr(2), token.nr(2), token.nr(2)
            token.eat_spaces()
            _zone(t, token)
        case "year4":
            t.y = token.nr(4)
        case "ago":
            for name in ("y", "m", "d", "h", "i", "s", "weekday"):
                setattr(rel, name, -getattr(rel, name))
            rel.weekday = rel.weekday or -7
            if rel.have_special and rel.special_type == SPECIAL_WEEKDAY:
                rel.special_amount = -rel.special_amount
        case "daytext":
            t.have_relative = rel.have_weekday = True
            t.unhave_time()
            unit = token.unit()
            rel.weekday = unit[1] if unit else 0
            rel.weekday_behavior = 2 if rel.weekday_behavior == 2 else 1
        case "relativetextweek" | "relativetext":
            t.have_relative = True
            while token.more():
                start = token.pos
                amount, behavior = token.relative_text()
                token.eat_spaces()
                _set_relative(t, token, amount, behavior, False)
                if action == "relativetextweek":
                    rel.weekday_behavior = 2
                    if not rel.have_weekday:
                        rel.have_weekday, rel.weekday = True, 1
                if token.pos == start:
                    break
        case "monthtext":
            t.have_date_once()
            t.m = _MONTHS.get(token.word().lower(), 0)
        case "zone":
            if _have_zone(t):
                return
            token.eat_spaces()
            _zone(t, token)
        case "dateshortwithtime12" | "dateshortwithtime24":
            t.have_date_once()
            t.m, t.d = token.month(), token.nr(2)
            t.have_time_once()
            t.h, t.i = token.nr(2), token.nr(2)
            twelve = action == "dateshortwithtime12"
            if token.char() in (":." if twelve else ":") and token.more():
                t.s = token.nr(2)
                if token.char() == "." and token.more():
                    t.us = token.frac_nr()
            if twelve:
                t.h = (t.h or 0) + token.meridian(t.h or 0)
            elif token.more():
                _zone(t, token)
        case "relative":
            t.have_relative = True
            while token.more():
                start = token.pos
                amount = token.signed_nr(24)
                token.eat_spaces()
                _set_relative(t, token, amount, 1, True)
                if token.pos == start:
                    break
        case _:
            raise ParseError("Unexpected character")


def _daynr_from_weeknr(year: int, week: int, day: int) -> int:
    """timelib_daynr_from_weeknr: days from January 1st to day `day` of ISO week `week`."""
    dow = (date(year, 1, 1).weekday() + 1) % 7 if 1 <= year <= 9999 else 0
    return -(dow - 7 if dow > 4 else dow) + (week - 1) * 7 + day


def _longest(text: str, pos: int) -> tuple[str, int]:
    """re2c's choice: the longest match of all rules, the earlier rule on a tie."""
    best_action, best_end = "any", pos
    for action, patterns in RULES:
        for pattern in patterns:
            found = pattern.match(text, pos)
            if found is not None and found.end() > best_end:
                best_action, best_end = action, found.end()
    return best_action, best_end


def scan(text: str) -> Fields:
    """timelib_strtotime: the fields `text` sets, or ParseError."""
    buffer = text.strip(" \t\n\v\f\r") + "\0"  # blank text reads as "now" (DateTime's)
    fields = Fields()
    pos = 0
    while pos < len(buffer) - 1:
        action, end = _longest(buffer, pos)
        _act(action, fields, _Token(buffer[pos:end]))
        pos = end
    return fields
