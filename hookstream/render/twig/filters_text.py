"""Twig's string filters with PHP's semantics: case mapping (mbstring), trim masks,
striptags, nl2br, replace (strtr), url_encode (rawurlencode, http_build_query), escape,
json_encode (with its flags), format (sprintf), round, abs and date."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hookstream.render.budget import LimitExceeded
from hookstream.render.glpi_json import php_json_encode
from hookstream.render.twig.dates import format_date, to_datetime
from hookstream.render.twig.escape import escape
from hookstream.render.twig.php import (
    PhpError,
    array_items,
    is_array,
    num_arg,
    str_arg,
    to_float,
    to_int,
    to_str,
)
from hookstream.render.twig.runtime import Ctx
from hookstream.render.twig.sprintf import sprintf

__all__ = ["TEXT_FILTERS"]


def _abs(ctx: Ctx, value: Any) -> Any:
    return abs(num_arg(value))


# mbstring's title case (Unicode's): a letter is title-cased unless the last character
# that is not "case-ignorable" was a cased letter. Case-ignorable: marks, format and
# modifier characters, and the in-word punctuation . ' : (so "h.lefevre" is "H.lefevre",
# "o'neil" "O'neil", while "x-ray" is "X-Ray", "a@b" "A@B" and "2e" "2E").
_IGNORABLE_CATEGORIES = frozenset({"Mn", "Me", "Cf", "Lm", "Sk"})
_IGNORABLE = frozenset(".':\u00b7\u0387\u05f4\u2018\u2019\u2024\u2027\ufe13\ufe52\ufe55"
                       "\uff07\uff0e\uff1a")
_CASED = frozenset({"Lu", "Ll", "Lt"})


def _title(ctx: Ctx, value: Any) -> str:
    out = []
    after_cased = False
    for char in str_arg(value):
        category = unicodedata.category(char)
        if char in _IGNORABLE or category in _IGNORABLE_CATEGORIES:
            out.append(char)
            continue
        out.append(char.lower() if after_cased else char.title())
        after_cased = category in _CASED
    return "".join(out)


def _capitalize(ctx: Ctx, value: Any) -> str:
    text = str_arg(value)
    return text[:1].upper() + text[1:].lower()


def _trim_chars(mask: str) -> str:
    # PHP's character mask: "a..z" is a range.
    return re.sub(r"(.)\.\.(.)", lambda m: "".join(
        chr(c) for c in range(ord(m[1]), ord(m[2]) + 1)), mask)


def _trim(ctx: Ctx, value: Any, character_mask: Any = None, side: Any = "both") -> str:
    chars = " \t\n\r\0\x0b" if character_mask is None else _trim_chars(str_arg(character_mask))
    text = str_arg(value)
    if side == "both":
        return text.strip(chars)
    if side == "left":
        return text.lstrip(chars)
    if side == "right":
        return text.rstrip(chars)
    raise PhpError('trimming side must be "left", "right" or "both"')


# A tag as PHP's strip_tags sees one: `<` not followed by whitespace, to the closing `>`
# outside quotes; comments and processing instructions too.
_TAG = re.compile(r"<(?:!--.*?(?:-->|\Z)|\?.*?(?:\?>|\Z)|(/?)([a-zA-Z][a-zA-Z0-9-]*)?(?!\s)"
                  r"""(?:[^>"']|"[^"]*"|'[^']*')*(?:>|\Z))""", re.S)


def _striptags(ctx: Ctx, value: Any, allowable_tags: Any = None) -> str:
    if is_array(allowable_tags):
        keep = {to_str(t).strip("<>/").lower() for _, t in array_items(allowable_tags)}
    else:
        keep = {t.lower() for t in re.findall(r"<([a-zA-Z0-9]+)>", to_str(allowable_tags))}

    def strip(match: re.Match[str]) -> str:
        name = match.group(2)
        return match.group(0) if name and name.lower() in keep else ""

    text = str_arg(value)
    return _TAG.sub(strip, text) if "<" in text else text


def _nl2br(ctx: Ctx, value: Any) -> str:
    return re.sub(r"(\r\n|\n\r|\n|\r)", r"<br />\1", str_arg(value))


def _replace(ctx: Ctx, value: Any, from_: Any = None) -> str:
    if not is_array(from_):
        raise PhpError('the "replace" filter expects an array of replacements')
    pairs = {to_str(k): to_str(v) for k, v in array_items(from_) if to_str(k) != ""}
    text = str_arg(value)
    if not pairs:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(pairs, key=len, reverse=True)))
    longest = max(len(v) for v in pairs.values())
    if longest > 1 and len(text) + len(pattern.findall(text)) * longest > (
            ctx.budget.limits.max_body_bytes):  # bound the result before building it
        raise LimitExceeded("value larger than the size limits")
    return pattern.sub(lambda m: pairs[m[0]], text)


def _query_pairs(value: Any, prefix: str) -> Iterator[str]:
    for key, item in array_items(value):
        name = f"{prefix}[{key}]" if prefix else str(key)
        if is_array(item):
            yield from _query_pairs(item, name)
        elif item is not None:
            text = str(int(item)) if isinstance(item, bool) else to_str(item)
            yield f"{urllib.parse.quote(name, safe='-_.~')}={urllib.parse.quote(text, safe='-_.~')}"


def _url_encode(ctx: Ctx, value: Any) -> str:
    if is_array(value):
        return "&".join(_query_pairs(value, ""))
    return urllib.parse.quote(str_arg(value), safe="-_.~")


def _escape(ctx: Ctx, value: Any, strategy: Any = "html", charset: Any = None,
            autoescape: bool = False) -> Any:
    if not isinstance(value, str):
        return value  # PHP: non-strings come back as they are, printed later
    return escape(value, to_str(strategy) if strategy is not None else "html")


def _raw(ctx: Ctx, value: Any) -> Any:
    return value


def json_encode(value: Any, flags: int = 0) -> str | bool:
    """PHP's json_encode; False (printed '') where PHP fails."""
    try:
        text = php_json_encode(value, pretty=bool(flags & 128))
    except (ValueError, TypeError):
        return False
    if flags & 64:  # JSON_UNESCAPED_SLASHES
        text = text.replace("\\/", "/")
    if flags & 256:  # JSON_UNESCAPED_UNICODE: \uXXXX back to characters (pairs included)
        text = re.sub(r"(?<!\\)((?:\\\\)*)\\u([0-9a-f]{4})(?:\\u(d[c-f][0-9a-f]{2}))?",
                      _unescape_unicode, text)
    for bit, char, code in ((1, "<", "\\u003C"), (1, ">", "\\u003E"), (2, "&", "\\u0026"),
                            (4, "'", "\\u0027"), (8, '\\"', "\\u0022")):
        if flags & bit:
            text = text.replace(char, code)
    return text


def _unescape_unicode(match: re.Match[str]) -> str:
    high = int(match.group(2), 16)
    if match.group(3) and 0xD800 <= high < 0xDC00:
        low = int(match.group(3), 16)
        return match.group(1) + chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    if 0xD800 <= high < 0xE000 or high < 0x20:
        return match.group(0)
    return match.group(1) + chr(high) + (f"\\u{match.group(3)}" if match.group(3) else "")


def _json_encode(ctx: Ctx, value: Any, flags: Any = 0) -> Any:
    return json_encode(value, to_int(flags))


def _round(ctx: Ctx, value: Any, precision: Any = 0, method: Any = "common") -> float:
    number = to_float(value)
    places = to_int(precision)
    if method == "common":
        if math.isnan(number) or math.isinf(number):
            return number
        quantum = Decimal(1).scaleb(-places)
        return float(Decimal(repr(number)).quantize(quantum, rounding=ROUND_HALF_UP))
    if method not in ("ceil", "floor"):
        raise PhpError('the round filter only supports "common", "ceil" and "floor"')
    scale = 10**places if places >= 0 else 10.0**places
    rounder = math.ceil if method == "ceil" else math.floor
    scaled = number * scale
    if math.isnan(scaled) or math.isinf(scaled):
        return scaled / scale
    result = float(rounder(scaled))
    if result == 0.0:  # C's ceil and floor keep the sign of zero: ceil(-0.5) is -0
        result = math.copysign(0.0, scaled)
    return result / scale


def _date(ctx: Ctx, value: Any, format: Any = None, timezone: Any = None) -> str:
    when = to_datetime(value, ctx.budget.now_s, ctx.timezone, timezone)
    return _formatted(when, when.tzinfo, "F j, Y H:i" if format is None else str_arg(format))


@functools.lru_cache(maxsize=4096)
def _formatted(when: datetime, zone: tzinfo | None, fmt: str) -> str:
    # `zone` is in the key because equal instants in two zones compare (and hash) equal.
    return format_date(when, fmt)


def _format(ctx: Ctx, value: Any, *values: Any) -> str:
    return sprintf(str_arg(value), values)


TEXT_FILTERS = {
    "abs": _abs, "capitalize": _capitalize, "date": _date, "escape": _escape,
    "format": _format, "json_encode": _json_encode, "lower": lambda c, v: str_arg(v).lower(),
    "nl2br": _nl2br, "raw": _raw, "replace": _replace, "round": _round,
    "striptags": _striptags, "title": _title, "trim": _trim,
    "upper": lambda c, v: str_arg(v).upper(), "url_encode": _url_encode,
}
