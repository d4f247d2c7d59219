"""PHP value semantics, table-driven (each vector checked against PHP 8.2)."""

from __future__ import annotations

from typing import Any

import pytest

from hookstream.render.twig.compare import loose_eq, spaceship
from hookstream.render.twig.php import PhpError, arith, normalize_key, pack, to_bool, to_str

STRINGS = [(None, ""), (True, "1"), (False, ""), (0.1 + 0.2, "0.3"), (1.0, "1"), (1e20, "1.0E+20"),
           (-0.0, "-0"), (1 / 3, "0.33333333333333"), (2**63 * 1.0, "9.2233720368548E+18"),
           ([1], "Array"), (1e15, "1.0E+15"), (123456789012345.0, "1.2345678901234E+14")]


@pytest.mark.parametrize(("value", "text"), STRINGS)
def test_string_conversion(value: Any, text: str) -> None:
    assert to_str(value) == text


EQUAL = [(0, "a", False), ("1", "01", True), ("10", "1e1", True), (100, "1e2", True),
         (None, False, True), (None, "0", False), ([], False, True), ("0", False, True),
         (" 1", 1, True), ("1 ", 1, True), ("abc", 0, False), ([1, 2], [1, 2], True),
         ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True), (1.0, 1, True), ("1.0", "1", True)]


@pytest.mark.parametrize(("a", "b", "equal"), EQUAL)
def test_loose_equality(a: Any, b: Any, equal: bool) -> None:
    assert loose_eq(a, b) is equal
    assert loose_eq(b, a) is equal


@pytest.mark.parametrize(("a", "b", "order"), [
    ("abc", "abd", -1), ("Z", "a", -1), (10, "9", 1), ("10", "9", 1), ("10", "9a", -1),
    ([1, 2, 3], [1, 2], 1), (None, -1, -1), ([], [], 0),
])
def test_spaceship(a: Any, b: Any, order: int) -> None:
    assert spaceship(a, b) == order


ARITH = [("+", "5", "5", 10), ("+", "1.5", 1, 2.5), ("+", None, 1, 1), ("+", True, True, 2),
         ("/", 10, 4, 2.5), ("/", 10, 5, 2), ("%", -10, 3, -1), ("%", 10, -3, 1),
         ("**", 2, -1, 0.5), ("**", 2, 64, 1.8446744073709552e19), ("*", 2**62, 4, 2.0**64),
         ("+", [1], [2, 3], [1, 3]), ("+", "5 apples", 1, 6)]


@pytest.mark.parametrize(("op", "a", "b", "result"), ARITH)
def test_arithmetic(op: str, a: Any, b: Any, result: Any) -> None:
    value = arith(op, a, b)
    assert value == result and type(value) is type(result)


@pytest.mark.parametrize(("op", "a", "b"), [("*", "abc", 2), ("+", [1], 1), ("/", 1, 0),
                                            ("%", 1, 0)])
def test_arithmetic_errors(op: str, a: Any, b: Any) -> None:
    with pytest.raises(PhpError):
        arith(op, a, b)


def test_truthiness_and_keys() -> None:
    assert [to_bool(v) for v in ("0", "", "0.0", [], [0], 0.0, None)] == [
        False, False, True, False, True, False, False]
    assert [normalize_key(k) for k in ("5", "05", "-3", "-0", 1.7, True, None)] == [
        5, "05", -3, "-0", 1, 1, ""]
    assert pack({0: "a", 1: "b"}) == ["a", "b"]
    assert pack({1: "a"}) == {1: "a"}
