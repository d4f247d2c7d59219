"""Twig's tests (`is even`, `is same as(...)`...) with PHP's semantics; `defined` is
compiled specially (it looks at the expression, not at its value)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hookstream.render.twig.compare import loose_eq
from hookstream.render.twig.php import arith, array_items, is_array

__all__ = ["TESTS", "is_empty", "same_as"]


def is_empty(value: Any) -> bool:
    """twig_test_empty: null, false, '' and the empty array (0 and '0' are not empty)."""
    return value is None or value is False or (value == "" and isinstance(value, str)) or (
        is_array(value) and not value)


def same_as(a: Any, b: Any) -> bool:
    """PHP's `===`."""
    if is_array(a) and is_array(b):
        left, right = list(array_items(a)), list(array_items(b))
        return len(left) == len(right) and all(
            ka == kb and type(ka) is type(kb) and same_as(va, vb)
            for (ka, va), (kb, vb) in zip(left, right, strict=True))
    if isinstance(a, datetime) or isinstance(b, datetime):
        return a is b
    kind_a = str if isinstance(a, str) else type(a)
    kind_b = str if isinstance(b, str) else type(b)
    return kind_a is kind_b and a == b


TESTS: dict[str, Callable[..., bool]] = {
    "even": lambda v: loose_eq(arith("%", v, 2), 0),
    "odd": lambda v: not loose_eq(arith("%", v, 2), 0),  # Twig: `v % 2 != 0`
    "null": lambda v: v is None, "none": lambda v: v is None,
    "same as": same_as,
    "divisible by": lambda v, d: loose_eq(arith("%", v, d), 0),
    "empty": is_empty,
    "iterable": is_array,
}
