"""timelib's scanner (parse_date.re, timelib 2022.12 as in PHP 8.2): the text to the fields
it sets (date, time, zone, relative parts), or the error that makes PHP refuse it.

Each action reads its token as timelib's does, through the same little readers
(timelib_get_nr, timelib_meridian...), so that their quirks carry over: "Back of 7pm" (a
capital B) reads as "front of", "2025-02-30" is a date to roll over, not an error."""

from __future__ import annotations

import re
from datetime import date

from hookstream.render.php_strtotime.fields import (
    DAY_OF_WEEK_IN_MONTH,
    FIRST_DAY_OF_MONTH,
    LAST_DAY_OF_MONTH,
    LAST_DAY_OF_WEEK_IN_MONTH,
    SPECIAL_WEEKDAY,
    Fields,
    ParseError,
)
from hookstream.render.php_strtotime.grammar import RULES
from hookstream.render.php_strtotime.token import Token
from hookstream.render.php_strtotime.zones import abbreviation, zone_id

__all__ = ["scan"]


def _process_year(year: int | None, length: int) -> int | None:
    """TIMELIB_PROCESS_YEAR: a year of one or two digits is 1970-2069."""
    if year is None or length >= 4 or year >= 100:
        return year
    return year + (2000 if year < 70 else 1900)


def _zone(t: Fields, token: Token) -> None:
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


def _set_relative(t: Fields, token: Token, amount: int, behavior: int,
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


def _time(t: Fields, token: Token, fraction: str = ".") -> None:
    """h[:i[:s[.frac]]], the time formats' common reading."""
    t.h = token.nr(2)
    if token.char() in ":." and token.more():
        t.i = token.nr(2)
        if token.char() in ":." and token.more():
            t.s = token.nr(2)
            if token.char() in fraction and token.more():
                t.us = token.frac_nr()


def _timestamp(t: Fields, token: Token) -> None:
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


def _act(action: str, t: Fields, token: Token) -> None:
    """The action of the rule `action` (parse_date.re), one case a rule."""
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
            t.m = token.month()
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
        _act(action, fields, Token(buffer[pos:end]))
        pos = end
    return fields
