"""timelib's readers of a token (timelib_get_nr, timelib_meridian, timelib_lookup_relunit...),
with their quirks: a number is found by skipping whatever precedes it."""

from __future__ import annotations

import re

from hookstream.render.php_strtotime.fields import SPECIAL_WEEKDAY, ParseError

__all__ = ["Token"]

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


class Token:
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
        while (self.char() in ".:" and self.more()) or "0" <= self.char() <= "9":
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
