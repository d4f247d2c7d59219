"""PHP's date parser (timelib, as `new DateTime($text, $zone)` and `strtotime` use it):
text, "now" and the default time zone to an aware datetime, or PhpError where PHP refuses
the text. Absolute ("2025-11-04 10:30", "4 Nov 2025", "11/04/2025"), relative ("+1 day",
"next monday", "last day of next month", "tomorrow noon", "2 weeks ago"), with zones
("CET", "+02:00", "Europe/Paris") and every combination timelib's grammar allows.

scan (the grammar) -> fields -> resolve (holes filled from now, relative parts applied,
wall-clock time read in its zone). Checked against php-cli by tests/differential.

Not reproduced, as Python's datetime cannot hold them: years before 1 or after 9999
("0000-00-00" is -0001-11-30 in PHP) and UTC offsets of a day or more ("+24:00"), refused
instead; a time zone identifier written in the wrong case ("Europe/PARIS") is read, but
named as the database spells it."""

from __future__ import annotations

import functools
from datetime import datetime, tzinfo

from hookstream.render.php_strtotime.fields import Fields, ParseError
from hookstream.render.php_strtotime.resolve import resolve
from hookstream.render.php_strtotime.scan import scan
from hookstream.render.php_strtotime.zones import wall_clock

__all__ = ["ParseError", "strtotime", "wall_clock"]


@functools.lru_cache(maxsize=1024)
def _scanned(text: str) -> Fields | ParseError:
    try:
        return scan(text)
    except ParseError as e:
        return e


def strtotime(text: str, now_s: float, default: tzinfo) -> datetime:
    """`new DateTime(text, default)` at the instant `now_s`: in the zone the text names, else
    in `default`. Raises ParseError where PHP throws "Failed to parse time string"."""
    fields = _scanned(text)
    if isinstance(fields, ParseError):
        raise fields
    return resolve(fields, now_s, default)
