"""timelib's date grammar (parse_date.re, timelib 2022.12 as in PHP 8.2) as Python regular
expressions, one rule per re2c action, in the file's order.

re2c takes the longest match of all rules at a position, the earlier rule on a tie. Python's
`re` takes the first match its backtracking finds, so a rule with top-level alternatives is
a tuple of patterns (the scanner takes the longest), and nested alternations list longer
words first. A quoted word is case-insensitive in re2c ('now'), a double-quoted one is not
("T", "W", "GMT", the roman months): `(?i:...)` marks the former. The scanner appends a NUL,
which some rules read as the end of the text (meridian, datenoyear)."""

from __future__ import annotations

import re

__all__ = ["RULES"]


def _words(*words: str, case: bool = False) -> str:
    """An alternation of literal words, longest first so that the first match is longest."""
    ordered = sorted(words, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(w) if case else f"(?i:{re.escape(w)})"
                            for w in ordered) + ")"


SPACE = "(?:[ \\t]+|\u00a0+|\u202f+)"
FRAC = r"\.[0-9]+"
HOUR24 = r"(?:2[0-4]|[01]?[0-9])"
HOUR24LZ = r"(?:[01][0-9]|2[0-4])"
HOUR12 = r"(?:1[0-2]|0?[1-9])"
MINUTE = r"[0-5]?[0-9]"
MINUTELZ = r"[0-5][0-9]"
SECOND = r"(?:60|[0-5]?[0-9])"
SECONDLZ = r"(?:60|[0-5][0-9])"
MERIDIAN = r"[AaPp]\.?[Mm]\.?[\0\t ]"
TZ = (r"\(?[A-Za-z]{1,6}\)?", r"[A-Z][a-z]+(?:[_/-][A-Za-z]+)+")
TZCORRECTION = (rf"(?:GMT)?[+-](?:{HOUR24LZ}:{MINUTELZ}:{SECONDLZ}|{HOUR24LZ}{MINUTELZ}{SECONDLZ}"
                rf"|{HOUR24}(?::?{MINUTE})?)")
DAYSUF = r"(?:st|nd|rd|th)"
MONTH = r"(?:1[0-2]|0?[0-9])"
DAY = rf"(?:3[01]|[0-2]?[0-9]){DAYSUF}?"
YEAR = r"[0-9]{1,4}"
YEAR2 = r"[0-9]{2}"
YEAR4 = r"[0-9]{4}"
DAYOFYEAR = r"(?:36[0-6]|3[0-5][0-9]|[1-2][0-9][0-9]|0[1-9][0-9]|00[1-9])"
WEEKOFYEAR = r"(?:5[0-3]|[1-4][0-9]|0[1-9])"
MONTHLZ = r"(?:0[0-9]|1[0-2])"
DAYLZ = r"(?:0[0-9]|[1-2][0-9]|3[01])"

_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
DAYFULLS = [d + "s" for d in _DAYS]
DAYABBR = [d[:3] for d in _DAYS]
DAYTEXT = _words(*DAYFULLS, *_DAYS, *DAYABBR, "weekday", "weekdays")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
MONTHABBR_WORDS = [m[:3] for m in _MONTHS] + ["sept"]
MONTHABBR = _words(*MONTHABBR_WORDS)
MONTHFULL = _words(*_MONTHS)
MONTHTEXT = "(?:" + "|".join(
    sorted([f"(?i:{w})" for w in (*_MONTHS, *MONTHABBR_WORDS)]
           + ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"],
           key=lambda w: len(w.removeprefix("(?i:").removesuffix(")")), reverse=True)) + ")"

# Time formats
TIMETINY12 = rf"{HOUR12}{SPACE}?{MERIDIAN}"
TIMESHORT12 = rf"{HOUR12}[:.]{MINUTELZ}{SPACE}?{MERIDIAN}"
TIMELONG12 = rf"{HOUR12}[:.]{MINUTE}[:.]{SECONDLZ}{SPACE}?{MERIDIAN}"
TIMETINY24 = rf"[tT]{HOUR24}"
TIMESHORT24 = rf"[tT]?{HOUR24}[:.]{MINUTE}"
TIMELONG24 = rf"[tT]?{HOUR24}[:.]{MINUTE}[:.]{SECOND}"
ISO8601LONG = rf"[tT]?{HOUR24}[:.]{MINUTE}[:.]{SECOND}{FRAC}"
ISO8601NORMTZ = (rf"[tT]?{HOUR24}[:.]{MINUTE}[:.]{SECONDLZ}{SPACE}?"
                 rf"(?:{TZCORRECTION}|{TZ[1]}|{TZ[0]})")
GNUNOCOLON = rf"[tT]?{HOUR24LZ}{MINUTELZ}"
ISO8601NOCOLON = rf"[tT]?{HOUR24LZ}{MINUTELZ}{SECONDLZ}"

# Date formats
AMERICANSHORT = rf"{MONTH}/{DAY}"
AMERICAN = rf"{MONTH}/{DAY}/{YEAR}"
ISO8601DATESLASH = rf"{YEAR4}/{MONTHLZ}/{DAYLZ}/?"
DATESLASH = rf"{YEAR4}/{MONTH}/{DAY}"
ISO8601DATE4 = rf"[+-]?{YEAR4}-{MONTHLZ}-{DAYLZ}"
ISO8601DATE2 = rf"{YEAR2}-{MONTHLZ}-{DAYLZ}"
ISO8601DATEX = rf"[+-][0-9]{{5,19}}-{MONTHLZ}-{DAYLZ}"
GNUDATESHORTER = rf"{YEAR4}-{MONTH}"
GNUDATESHORT = rf"{YEAR}-{MONTH}-{DAY}"
POINTEDDATE4 = rf"{DAY}[.\t-]{MONTH}[.-]{YEAR4}"
POINTEDDATE2 = rf"{DAY}[.\t]{MONTH}\.{YEAR2}"
DATEFULL = rf"{DAY}[ \t.-]*{MONTHTEXT}[ \t.-]*{YEAR}"
DATENODAY = rf"{MONTHTEXT}[ .\t-]*{YEAR4}"
DATENODAYREV = rf"{YEAR4}[ .\t-]*{MONTHTEXT}"
DATETEXTUAL = rf"{MONTHTEXT}[ .\t-]*{DAY}[,.stndrh\t ]+{YEAR}"
DATENOYEAR = rf"{MONTHTEXT}[ .\t-]*{DAY}(?:[,.stndrh\t ]+|\0)"
DATENOYEARREV = rf"{DAY}[ .\t-]*{MONTHTEXT}"
DATENOCOLON = rf"{YEAR4}{MONTHLZ}{DAYLZ}"

# Special formats
SOAP = (rf"{YEAR4}-{MONTHLZ}-{DAYLZ}T{HOUR24LZ}:{MINUTELZ}:{SECONDLZ}{FRAC}"
        rf"(?:{TZCORRECTION})?")
XMLRPC = rf"{YEAR4}{MONTHLZ}{DAYLZ}T{HOUR24}:{MINUTELZ}:{SECONDLZ}"
XMLRPCNOCOLON = rf"{YEAR4}{MONTHLZ}{DAYLZ}[tT]{HOUR24}{MINUTELZ}{SECONDLZ}"
WDDX = rf"{YEAR4}-{MONTH}-{DAY}T{HOUR24}:{MINUTE}:{SECOND}"
PGYDOTD = rf"{YEAR4}[.-]?{DAYOFYEAR}"
PGTEXTSHORT = rf"{MONTHABBR}-{DAYLZ}-{YEAR}"
PGTEXTREVERSE = rf"{YEAR}-{MONTHABBR}-{DAYLZ}"
MSSQLTIME = rf"{HOUR12}:{MINUTELZ}:{SECONDLZ}[:.][0-9]+{MERIDIAN}"
ISOWEEKDAY = rf"{YEAR4}-?W{WEEKOFYEAR}-?[0-7]"
ISOWEEK = rf"{YEAR4}-?W{WEEKOFYEAR}"
EXIF = rf"{YEAR4}:{MONTHLZ}:{DAYLZ} {HOUR24LZ}:{MINUTELZ}:{SECONDLZ}"
BACKOF = rf"(?i:back of ){HOUR24}(?:{SPACE}?{MERIDIAN})?"
FRONTOF = rf"(?i:front of ){HOUR24}(?:{SPACE}?{MERIDIAN})?"
CLF = (rf"{DAY}/{MONTHABBR}/{YEAR4}:{HOUR24LZ}:{MINUTELZ}:{SECONDLZ}{SPACE}"
       rf"{TZCORRECTION}")
TIMESTAMP = r"@-?[0-9]+"
TIMESTAMPMS = r"@-?[0-9]+\.[0-9]{0,6}"

# Relative formats
RELTEXTNUMBER = _words("first", "second", "third", "fourth", "fifth", "sixth", "seventh",
                       "eight", "eighth", "ninth", "tenth", "eleventh", "twelfth")
RELTEXTTEXT = _words("next", "last", "previous", "this")
_UNITS = ("msec", "millisecond", "µsec", "microsecond", "usec", "sec", "second", "min",
          "minute", "hour", "day", "fortnight", "forthnight", "month", "year")
RELTEXTUNIT = _words("ms", "µs", *_UNITS, *(u + "s" for u in _UNITS), "weeks", *DAYFULLS,
                     *_DAYS, *DAYABBR, "weekday", "weekdays")
RELNUMBER = r"[+-]*[ \t]*[0-9]{1,13}"
RELATIVE = (rf"{RELNUMBER}{SPACE}?{RELTEXTUNIT}", rf"{RELNUMBER}{SPACE}?(?i:week)")
RELATIVETEXT = rf"(?:{RELTEXTNUMBER}|{RELTEXTTEXT}){SPACE}{RELTEXTUNIT}"
RELATIVETEXTWEEK = rf"{RELTEXTTEXT}{SPACE}(?i:week)"
WEEKDAYOF = (rf"(?:{RELTEXTNUMBER}|{RELTEXTTEXT}){SPACE}"
             rf"{_words(*DAYFULLS, *_DAYS, *DAYABBR)}{SPACE}(?i:of)")

DATENOYEAR_TIME12 = (rf"{DATENOYEAR}{TIMESHORT12}", rf"{DATENOYEAR}{TIMELONG12}")
DATENOYEAR_TIME24 = (rf"{DATENOYEAR}{TIMESHORT24}", rf"{DATENOYEAR}{TIMELONG24}",
                     rf"{DATENOYEAR}{ISO8601NORMTZ}")

# (action, patterns) in parse_date.re's order: the order breaks ties between equal lengths.
_TABLE: list[tuple[str, tuple[str, ...]]] = [
    ("yesterday", ("(?i:yesterday)",)),
    ("now", ("(?i:now)",)),
    ("noon", ("(?i:noon)",)),
    ("midnight", ("(?i:midnight)", "(?i:today)")),
    ("tomorrow", ("(?i:tomorrow)",)),
    ("timestamp", (TIMESTAMP,)),
    ("timestampms", (TIMESTAMPMS,)),
    ("firstlastdayof", ("(?i:first day of)", "(?i:last day of)")),
    ("backfrontof", (BACKOF, FRONTOF)),
    ("weekdayof", (WEEKDAYOF,)),
    ("time12", (TIMETINY12, TIMESHORT12, TIMELONG12)),
    ("mssqltime", (MSSQLTIME,)),
    ("time24", (TIMETINY24, TIMESHORT24, TIMELONG24, ISO8601LONG)),
    ("gnunocolon", (GNUNOCOLON,)),
    ("iso8601nocolon", (ISO8601NOCOLON,)),
    ("american", (AMERICANSHORT, AMERICAN)),
    ("iso8601date4", (ISO8601DATE4, ISO8601DATESLASH, DATESLASH)),
    ("iso8601date2", (ISO8601DATE2,)),
    ("iso8601datex", (ISO8601DATEX,)),
    ("gnudateshorter", (GNUDATESHORTER,)),
    ("gnudateshort", (GNUDATESHORT,)),
    ("datefull", (DATEFULL,)),
    ("pointeddate4", (POINTEDDATE4,)),
    ("pointeddate2", (POINTEDDATE2,)),
    ("datenoday", (DATENODAY,)),
    ("datenodayrev", (DATENODAYREV,)),
    ("datetextual", (DATETEXTUAL, DATENOYEAR)),
    ("datenoyearrev", (DATENOYEARREV,)),
    ("datenocolon", (DATENOCOLON,)),
    ("xmlrpc", (XMLRPC, XMLRPCNOCOLON, SOAP, WDDX, EXIF)),
    ("pgydotd", (PGYDOTD,)),
    ("isoweekday", (ISOWEEKDAY,)),
    ("isoweek", (ISOWEEK,)),
    ("pgtextshort", (PGTEXTSHORT,)),
    ("pgtextreverse", (PGTEXTREVERSE,)),
    ("clf", (CLF,)),
    ("year4", (YEAR4,)),
    ("ago", ("(?i:ago)",)),
    ("daytext", (DAYTEXT,)),
    ("relativetextweek", (RELATIVETEXTWEEK,)),
    ("relativetext", (RELATIVETEXT,)),
    ("monthtext", (MONTHFULL, MONTHABBR)),
    ("zone", (TZCORRECTION, *TZ)),
    ("dateshortwithtime12", DATENOYEAR_TIME12),
    ("dateshortwithtime24", DATENOYEAR_TIME24),
    ("relative", RELATIVE),
    ("skip", ("[.,]", SPACE, "[\0\n]")),
    ("any", ("(?s:.)",)),
]

RULES: list[tuple[str, tuple[re.Pattern[str], ...]]] = [
    (action, tuple(re.compile(p) for p in patterns)) for action, patterns in _TABLE]
