"""PHP 8 value semantics, as Twig inherits them: string conversion, truthiness, numeric
strings and arithmetic (comparison is in `compare`).

Values are decoded JSON plus what templates build: None, bool, int, float, str (and its
`Markup` subclass), list (a PHP array keyed 0..n-1) and dict (any other PHP array; int or
str keys, in insertion order). PHP integers are 64-bit: results that leave that range become
floats, as in PHP.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from hookstream.render.glpi_json import php_float

__all__ = [
    "INT_MAX", "Markup", "PhpError", "arith", "array_items", "bitwise", "is_array",
    "is_numeric", "normalize_key", "num_arg", "pack", "str_arg", "string_number", "to_bool",
    "to_float", "to_int", "to_number", "to_str", "type_name",
]

INT_MAX = 2**63 - 1
INT_MIN = -(2**63)


class Markup(str):
    """Text Twig will not escape again: a `{% set %}` capture or a macro's output."""

    __slots__ = ()


class PhpError(Exception):
    """A PHP runtime error (TypeError, DivisionByZeroError...): the message is ours, no value."""


_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*\Z")
_LEADING = re.compile(r"[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[ \t\n\r\v\f]*[+-]?\d+[ \t\n\r\v\f]*\Z")


def is_array(value: object) -> bool:
    return isinstance(value, (list, dict))


def type_name(value: object) -> str:
    """PHP's name for a value's type, for error messages that must not quote the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "array"


def php_int(value: int) -> int | float:
    """An integer result: a float when it leaves PHP's 64-bit range."""
    return value if INT_MIN <= value <= INT_MAX else float(value)


def is_numeric(text: str) -> bool:
    return _NUMERIC.match(text) is not None


def string_number(text: str, strict: bool) -> int | float | None:
    match = (_NUMERIC if strict else _LEADING).match(text)
    if match is None:
        return None
    number = match.group(0).strip(" \t\n\r\v\f")
    if _INTEGER.match(number):
        return php_int(int(number))
    return float(number)


def to_number(value: Any, operator: str = "+") -> int | float:
    """An operand of arithmetic: PHP 8 rules (a non-numeric string is a TypeError,
    a leading-numeric one like '5 apples' gives its number, with a warning in PHP)."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        number = string_number(value, strict=False)
        if number is None:
            raise PhpError(f"unsupported operand types: string {operator} number")
        return number
    raise PhpError(f"unsupported operand types: array {operator} number")


def num_arg(value: Any) -> int | float:
    """A value passed to a PHP function's int|float parameter: only wholly numeric strings."""
    if isinstance(value, str):
        number = string_number(value, strict=True)
        if number is None:
            raise PhpError("argument must be of type int|float, string given")
        return number
    return to_number(value)


def to_int(value: Any) -> int:
    """PHP's (int) cast."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return 0
        return int(value) if INT_MIN <= value <= INT_MAX else 0
    if isinstance(value, str):
        number = string_number(value, strict=False)
        return 0 if number is None else to_int(number)
    if isinstance(value, (list, dict)):
        return 1 if value else 0
    return int(value or 0)


def to_float(value: Any) -> float:
    if isinstance(value, str):
        match = _LEADING.match(value)  # as a float directly: (float) "-0" is -0.0
        return 0.0 if match is None else float(match.group(0).strip(" \t\n\r\v\f"))
    if isinstance(value, (list, dict)):
        return 1.0 if value else 0.0
    return float(value or 0)


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value != "" and value != "0"
    if isinstance(value, float):
        return value != 0.0
    return bool(value)


def to_str(value: Any) -> str:
    """PHP's string conversion (echo, `~`): null and false '', true '1', floats with
    precision 14, arrays 'Array' (PHP also warns)."""
    if isinstance(value, str):
        return value
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        return php_float(value, precision=14, exponent="E")
    return "Array"


def str_arg(value: Any) -> str:
    """A value passed to a PHP function's string parameter: arrays are a TypeError there,
    null is '' (Twig passes `$value ?? ''`)."""
    if isinstance(value, (list, dict)):
        raise PhpError("argument must be of type string, array given")
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        raise PhpError("argument must be of type string")
    return to_str(value)


def normalize_key(key: Any) -> int | str:
    """A PHP array key: '5' is the integer 5, floats and bools are truncated, null is ''."""
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, int):
        return key
    if isinstance(key, float):
        return to_int(key)
    if key is None:
        return ""
    text = str(key)
    if text.isdigit() and (text == "0" or text[0] != "0") and int(text) <= INT_MAX:
        return int(text)
    if text[:1] == "-" and text[1:].isdigit() and text[1:2] != "0" and -int(text[1:]) >= INT_MIN:
        return int(text)
    return text


def array_items(value: Any) -> Iterator[tuple[int | str, Any]]:
    """(key, value) pairs of a PHP array, keys normalised as PHP holds them."""
    if isinstance(value, list):
        return iter(enumerate(value))
    if isinstance(value, Mapping):
        return ((normalize_key(k), v) for k, v in value.items())
    return iter(())


def arith(operator: str, left: Any, right: Any) -> Any:
    """PHP's + - * / % ** on Twig operands."""
    if operator == "+" and is_array(left) and is_array(right):
        union = dict(array_items(left))
        for key, item in array_items(right):
            union.setdefault(key, item)
        return pack(union)
    a = to_number(left, operator)
    b = to_number(right, operator)
    if operator == "%":
        ia, ib = to_int(a), to_int(b)
        if ib == 0:
            raise PhpError("modulo by zero")
        rest = abs(ia) % abs(ib)  # C's remainder: the sign of the dividend
        return -rest if ia < 0 else rest
    if operator == "/":
        if b == 0:
            raise PhpError("division by zero")
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return php_int(a // b)
        return a / b
    if operator == "**":
        if isinstance(a, int) and isinstance(b, int) and b >= 0:
            if abs(a) > 1 and b * abs(a).bit_length() > 4096:
                return math.inf if a > 0 or b % 2 == 0 else -math.inf
            return php_int(a**b)
        try:
            return math.pow(float(a), float(b))
        except ValueError:  # a negative number to a fractional power, or 0 to a negative
            return math.nan if a != 0 else math.inf
        except OverflowError:  # the sign survives: an odd power of a negative number
            odd = float(b).is_integer() and int(b) % 2 == 1
            return -math.inf if a < 0 and odd else math.inf
        except ZeroDivisionError:
            return math.inf
    if operator == "+":
        result = a + b
    elif operator == "-":
        result = a - b
    else:
        result = a * b
    return php_int(result) if isinstance(result, int) else result


def bitwise(operator: str, left: Any, right: Any) -> Any:
    """PHP's & | ^ (Twig's b-and, b-or, b-xor): byte by byte on two strings, else on
    the operands as integers."""
    if isinstance(left, str) and isinstance(right, str):
        a, b = left.encode(), right.encode()
        if operator == "|":
            a, b = a.ljust(len(b), b"\0"), b.ljust(len(a), b"\0")
        pairs = zip(a, b, strict=False)
        ops = {"&": lambda x, y: x & y, "|": lambda x, y: x | y, "^": lambda x, y: x ^ y}
        return bytes(ops[operator](x, y) for x, y in pairs).decode("utf-8", "replace")
    ia, ib = to_int(to_number(left, operator)), to_int(to_number(right, operator))
    if operator == "&":
        return ia & ib
    return ia | ib if operator == "|" else ia ^ ib


def pack(array: dict[int | str, Any]) -> list[Any] | dict[int | str, Any]:
    """A PHP array as a list when its keys are 0..n-1 in order, else as a dict."""
    if all(k == i and type(k) is int for i, k in enumerate(array)):
        return list(array.values())
    return array
