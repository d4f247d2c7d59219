"""PHP `json_encode` reproduced byte for byte, for GLPI's default webhook body.

Receivers verify signatures over the exact body bytes GLPI would send, so the encoding must
match `json_encode($value, JSON_PRETTY_PRINT)` (PHP 7.1+ with `serialize_precision=-1`):

- four spaces of indent and `"key": value`; with `pretty=False` no whitespace at all;
- strings: `"` `\\` and `/` escaped (`\\/`), `\\b \\f \\n \\r \\t`, other control characters
  and every non-ASCII character as lowercase `\\uXXXX` (surrogate pairs above U+FFFF);
  DEL (0x7f) stays as is (PHP's escape charmap leaves it);
- PHP has one array type: an empty dict is `[]`, like an empty list, and a dict whose keys
  are exactly 0..n-1 in order is a list; any other dict is an object;
- floats are PHP's `php_gcvt(value, 17)` in mode 0 (shortest round-trip digits, the same
  digits as Python's `repr`), printed plainly unless the decimal exponent is above 17 or
  below -4, then as `d.ddde+X` with at least one fraction digit: `4.0 -> 4`,
  `0.1 -> 0.1`, `1e16 -> 10000000000000000`, `1e25 -> 1.0e+25`, `1.5e-7 -> 1.5e-7`,
  `0.0001 -> 0.0001`, `-0.0 -> -0`. NaN and infinities are an error, as in PHP.

A hand-written recursive encoder is used rather than `json.dumps(indent=4)` plus fixups:
on Python 3.11 an indented `json.dumps` runs the pure-Python encoder anyway, and doing the
work in one pass avoids textual rewrites (`{}` inside a string is not an empty object).
Strings go through the C-accelerated `encode_basestring_ascii`.

`default_payload` (every default-payload webhook, once per event) first tries a fast path:
orjson's 2-space pretty output turned into PHP's by doubling the indent, escaping `/` and
non-ASCII. It is taken only when a walk shows nothing orjson spells differently from PHP
(floats, empty dicts, dicts PHP sees as lists, types other than str/int/bool/None/dict/list);
otherwise, or if orjson refuses the value, the exact encoder above runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

import orjson

__all__ = ["default_payload", "php_json_encode"]


def php_json_encode(value: object, pretty: bool = True) -> str:
    """Encode `value` exactly as PHP's `json_encode($value, JSON_PRETTY_PRINT)` would.

    With `pretty=False` the result matches `json_encode($value)` (flags 0). Raises
    `ValueError` for NaN or infinity and `TypeError` for values PHP arrays cannot hold.
    """
    parts: list[str] = []
    _encode(value, parts, "\n" if pretty else "")
    return "".join(parts)


def default_payload(
    item: Mapping[str, Any], event: str, parent_item: Mapping[str, Any] | None
) -> bytes:
    """GLPI's default webhook body: `{"item", "event"[, "parent_item"]}`, pretty, UTF-8."""
    body: dict[str, Any] = {"item": item, "event": event}
    if parent_item is not None:
        body["parent_item"] = parent_item
    fast = _fast_pretty(body)
    return fast if fast is not None else php_json_encode(body).encode("utf-8")


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_LEAVES = frozenset({str, int, bool, type(None)})


def _fast_pretty(value: object) -> bytes | None:
    """`php_json_encode(value).encode()` via orjson, or None where it could differ.

    orjson escapes `"`, `\\`, control characters (`\\b \\f \\n \\r \\t`, else lowercase
    `\\u00XX`) as encode_basestring_ascii does, leaves DEL as PHP does, and writes no raw
    control character: every raw newline is pretty-printing, and \x00 is free as a marker.
    `/` and non-ASCII occur only inside strings, so escaping them afterwards is safe.
    """
    double_spaces = _fast_safe(value)
    if double_spaces is None:
        return None
    try:
        # Lone surrogates, ints beyond 64 bits, nesting past 255 levels: orjson refuses.
        out = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:
        return None
    if not double_spaces:
        # orjson indents 2 spaces a level, PHP 4. With no string holding two spaces in a row,
        # every "  " is indent: double it.
        out = out.replace(b"  ", b"    ")
    else:
        lines = out.split(b"\n")
        out = b"\n".join([line[: len(line) - len(line.lstrip(b" "))] + line for line in lines])
    out = out.replace(b"/", b"\\/")
    if out.isascii():
        return out
    text = out.decode()
    # backslashreplace writes U+0080..U+00FF as `\\xe9`: park the existing backslashes on
    # \x00 so that every `\\x` afterwards is one of those, widen them to `\\u00e9`, restore.
    escaped = text.replace("\\", "\x00").encode("ascii", "backslashreplace")
    if not _latin1(text) and b"\\U" in escaped:
        # An astral character (`\\U0001f600`): PHP writes a surrogate pair, as does
        # encode_basestring_ascii for a run of non-ASCII (it holds no quote or backslash).
        return _NON_ASCII.sub(lambda m: encode_basestring_ascii(m.group())[1:-1], text).encode()
    return escaped.replace(b"\\x", b"\\u00").replace(b"\x00", b"\\")


def _latin1(text: str) -> bool:
    """Whether every character is below U+0100 (French, German, Spanish...: then no `\\U`
    needs looking for): a copy in C for such text, where the search is a slower scan."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _fast_safe(value: object) -> bool | None:
    """None unless orjson's encoding of `value` is PHP's up to indent, `/` and non-ASCII;
    else whether a key or string holds two spaces in a row (then "  " is not all indent).

    Dicts and lists only, holding str, int, bool, None (exact types): floats need
    php_float; subclasses and other types (tuples, enums, dataclasses, datetimes) orjson
    spells differently or PHP's rules reject. PHP writes an empty array as `[]` and one keyed
    "0".."n-1" as a list: any dict with a "0" key is left to the exact encoder. Non-str keys
    make orjson refuse.
    """
    # A walk with a stack of the containers still to see, not a recursive generator: most
    # values are leaves, checked inline (this runs once per event on the hot path).
    kind = type(value)
    if kind is not dict and kind is not list:
        return (kind is str and "  " in value) if kind in _LEAVES else None  # type: ignore[operator]
    double_spaces = False
    stack: list[Any] = [value]
    values: Iterable[Any]
    while stack:
        container = stack.pop()
        if type(container) is dict:
            if not container or "0" in container:
                return None
            for key in container:
                if type(key) is str and "  " in key:
                    double_spaces = True
            values = container.values()
        else:
            values = container
        for item in values:
            kind = type(item)
            if kind is str:
                if "  " in item:
                    double_spaces = True
            elif kind is dict or kind is list:
                stack.append(item)
            elif kind not in _LEAVES:
                return None
    return double_spaces


def php_float(value: float, precision: int = -1, exponent: str = "e") -> str:
    """Spell a float as PHP does: `php_gcvt(value, precision)`.

    The default (-1) is json_encode's `serialize_precision=-1`: shortest round-trip digits.
    `precision=14, exponent="E"` is PHP's string conversion (`echo`, Twig's printing).
    """
    if math.isnan(value) or math.isinf(value):
        raise ValueError("NaN and infinity cannot be JSON encoded")
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if precision < 0:
        # repr gives the shortest round-trip digits, as dtoa mode 0 does for PHP; Decimal
        # splits them into digits and an exponent without float arithmetic.
        ndigit = 17
        _, digit_tuple, exp = Decimal(repr(abs(value))).as_tuple()
        digits = "".join(map(str, digit_tuple))
        decpt = len(digit_tuple) + int(exp)  # where the point sits after the first digit
    else:
        ndigit = precision
        mantissa, _, exp_text = f"{abs(value):.{precision - 1}e}".partition("e")
        digits = mantissa.replace(".", "")
        decpt = int(exp_text) + 1
    digits = digits.rstrip("0") or "0"
    sign = "-" if value < 0 else ""
    if decpt > ndigit or decpt < -3:
        power = decpt - 1
        fraction = digits[1:] or "0"
        return f"{sign}{digits[0]}.{fraction}{exponent}{'-' if power < 0 else '+'}{abs(power)}"
    if decpt <= 0:
        return f"{sign}0.{'0' * -decpt}{digits}"
    if len(digits) <= decpt:
        return f"{sign}{digits}{'0' * (decpt - len(digits))}"
    return f"{sign}{digits[:decpt]}.{digits[decpt:]}"


def _string(text: str) -> str:
    if "\x7f" in text:  # PHP leaves DEL as is where Python writes \u007f
        return '"' + "\x7f".join(_string(part)[1:-1] for part in text.split("\x7f")) + '"'
    return encode_basestring_ascii(text).replace("/", "\\/")


def _key(key: object) -> str:
    if isinstance(key, str):
        return _string(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return f'"{key}"'
    raise TypeError(f"PHP array keys are int or string, not {type(key).__name__}")


def _is_list_like(mapping: Mapping[Any, Any]) -> bool:
    # PHP normalises "0", "1"... to integer keys; an array keyed 0..n-1 in order is a list.
    for index, key in enumerate(mapping):
        if isinstance(key, bool) or key not in (index, str(index)):
            return False
    return True


def _encode(value: object, out: list[str], newline: str) -> None:
    # `newline` is "\n" plus the current indent when pretty, "" when compact.
    # Exact-type checks first: decoded JSON holds only these types, and `type(v) is`
    # is cheaper than isinstance against ABCs; anything else takes the general path below.
    kind = type(value)
    if kind is str:
        out.append(_string(value))  # type: ignore[arg-type]
    elif kind is dict:
        _encode_mapping(value, out, newline)  # type: ignore[arg-type]
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is list:
        _encode_list(value, out, newline)  # type: ignore[arg-type]
    elif isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(php_float(value))
    elif isinstance(value, Mapping):
        _encode_mapping(value, out, newline)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        _encode_list(value, out, newline)
    else:
        raise TypeError(f"cannot JSON encode {type(value).__name__}")


def _encode_mapping(value: Mapping[Any, Any], out: list[str], newline: str) -> None:
    if not value:
        out.append("[]")
    elif _is_list_like(value):
        _encode_list(list(value.values()), out, newline)
    else:
        inner = newline + "    " if newline else ""
        sep = ": " if newline else ":"
        out.append("{")
        first = True
        for key, item in value.items():
            out.append(inner if first else "," + inner)
            first = False
            out.append(_key(key))
            out.append(sep)
            _encode(item, out, inner)
        out.append(newline + "}")


def _encode_list(value: Sequence[Any], out: list[str], newline: str) -> None:
    if not value:
        out.append("[]")
        return
    inner = newline + "    " if newline else ""
    out.append("[")
    first = True
    for item in value:
        out.append(inner if first else "," + inner)
        first = False
        _encode(item, out, inner)
    out.append(newline + "]")
