"""PHP 8 comparison, as Twig inherits it: `==` (loose), `<=>` (arrays by size then key by
key, numeric strings as numbers, other strings byte by byte) and Twig's twig_compare."""

from __future__ import annotations

import math
from typing import Any

from hookstream.render.twig.php import array_items, is_array, string_number, to_bool, to_str

__all__ = ["compare", "loose_eq", "spaceship"]


def _compare_scalars(a: Any, b: Any) -> int:
    """PHP 8's `<=>` for two non-array values."""
    if a is None and b is None:
        return 0
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        if isinstance(a, str) and b is None:
            return _cmp(a, "")
        if a is None and isinstance(b, str):
            return _cmp("", b)
        return _cmp(to_bool(a), to_bool(b))
    if isinstance(a, str) and isinstance(b, str):
        na, nb = string_number(a, True), string_number(b, True)
        if na is not None and nb is not None:
            return _cmp(na, nb)
        return _cmp(a.encode(), b.encode())
    if isinstance(a, str):
        nb_ = string_number(a, True)
        return _cmp(nb_, b) if nb_ is not None else _cmp(a.encode(), to_str(b).encode())
    if isinstance(b, str):
        na_ = string_number(b, True)
        return _cmp(a, na_) if na_ is not None else _cmp(to_str(a).encode(), b.encode())
    return _cmp(a, b)


def _cmp(a: Any, b: Any) -> int:
    if type(a) is int and type(b) is float:  # PHP compares an int with a float as floats
        a = float(a)
    elif type(a) is float and type(b) is int:
        b = float(b)
    return int(a > b) - int(a < b)


def spaceship(a: Any, b: Any) -> int:
    """PHP 8's `<=>`: arrays compare by size then key by key; an array is above anything
    but null and bool."""
    if is_array(a) and is_array(b):
        left, right = dict(array_items(a)), dict(array_items(b))
        if len(left) != len(right):
            return _cmp(len(left), len(right))
        for key, item in left.items():
            if key not in right:
                return 1
            result = spaceship(item, right[key])
            if result:
                return result
        return 0
    if is_array(a) or is_array(b):
        other = b if is_array(a) else a
        if other is None or isinstance(other, bool):
            return _cmp(to_bool(a), to_bool(b))
        return 1 if is_array(a) else -1
    return _compare_scalars(a, b)


def loose_eq(a: Any, b: Any) -> bool:
    """PHP 8's `==`."""
    if is_array(a) and is_array(b):
        left, right = dict(array_items(a)), dict(array_items(b))
        return left.keys() == right.keys() and all(loose_eq(v, right[k]) for k, v in left.items())
    if is_array(a) or is_array(b):
        other = b if is_array(a) else a
        if other is None or isinstance(other, bool):
            return to_bool(a) == to_bool(b)
        return False
    if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return False
    return _compare_scalars(a, b) == 0


def compare(a: Any, b: Any) -> int:
    """Twig's twig_compare (`in`, `sort`'s default order): PHP 8's `<=>` with Twig's trimming
    of numeric strings against numbers."""
    if isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, str):
        if isinstance(a, float) and math.isnan(a):
            return 1
        trimmed = b.strip(" \t\n\r\v\f")
        number = string_number(trimmed, True)
        return _cmp(a, number) if number is not None else _cmp(to_str(a).encode(), b.encode())
    if isinstance(a, str) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return -compare(b, a)
    return spaceship(a, b)
