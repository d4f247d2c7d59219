"""glpi_json reproduces PHP json_encode byte for byte: fixture bodies plus one vector per rule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from hookstream.render import default_payload, php_float, php_json_encode
from tests.conftest import FIXTURES, fixture_item

BODIES = sorted(FIXTURES.glob("webhook_default_payloads/*.json")) + sorted(
    FIXTURES.glob("latest/webhook_default_payloads/*.json")
)


def test_fixture_bodies_exist() -> None:
    assert len(BODIES) == 6


@pytest.mark.parametrize("path", BODIES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_reencoding_each_fixture_body_is_byte_identical(path: Path) -> None:
    expected = path.read_bytes()
    assert php_json_encode(json.loads(expected)).encode() == expected


# (body file, item fixture, event, parent fixture or None)
BUILT = [
    ("webhook_default_payloads/Ticket_new.json", "Ticket.json", "new", None),
    ("webhook_default_payloads/Computer_update.json", "Computer.json", "update", None),
    ("webhook_default_payloads/ITILFollowup_new.json", "ITILFollowup.json", "new",
     "ITILFollowup_parent_Ticket.json"),
    ("webhook_default_payloads/TicketTask_new.json", "TicketTask.json", "new", "body"),
    ("latest/webhook_default_payloads/Ticket_new.json", "latest/Ticket.json", "new", None),
    ("latest/webhook_default_payloads/ITILFollowup_new.json", "latest/ITILFollowup.json", "new",
     "latest/ITILFollowup_parent_Ticket.json"),
]


@pytest.mark.parametrize(("body", "item", "event", "parent"), BUILT, ids=[b[0] for b in BUILT])
def test_default_payload_built_from_item_fixtures(
    body: str, item: str, event: str, parent: str | None
) -> None:
    expected = (FIXTURES / body).read_bytes()
    # TicketTask has no separate parent fixture: take the parent from the expected body.
    parent_item = json.loads(expected)["parent_item"] if parent == "body" else (
        fixture_item(parent) if parent else None)
    assert default_payload(fixture_item(item), event, parent_item) == expected


def test_default_payload_key_order_and_no_parent() -> None:
    body = default_payload({"id": 1}, "delete", None)
    assert body == b'{\n    "item": {\n        "id": 1\n    },\n    "event": "delete"\n}'


VECTORS: list[tuple[Any, str]] = [
    ("a/b", '"a\\/b"'),
    ("</p>", '"<\\/p>"'),
    ("é", '"\\u00e9"'),
    ("«»", '"\\u00ab\\u00bb"'),
    ("😀", '"\\ud83d\\ude00"'),
    ("\\", '"\\\\"'),
    ('"', '"\\""'),
    ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
    ("\x00\x01\x1f", '"\\u0000\\u0001\\u001f"'),
    ("\x7f", '"\x7f"'),
    ("a\x7f\\u007f", '"a\x7f\\\\u007f"'),
    ("{}", '"{}"'),
    ([], "[]"),
    ({}, "[]"),
    ({"a": {}}, '{\n    "a": []\n}'),
    ({"a": []}, '{\n    "a": []\n}'),
    ([1, [2]], "[\n    1,\n    [\n        2\n    ]\n]"),
    ({"0": "a", "1": "b"}, '[\n    "a",\n    "b"\n]'),
    ({"1": "a"}, '{\n    "1": "a"\n}'),
    ({5: "x"}, '{\n    "5": "x"\n}'),
    (True, "true"),
    (False, "false"),
    (None, "null"),
    (0, "0"),
    (-42, "-42"),
    (4.0, "4"),
    (-4.0, "-4"),
    (0.0, "0"),
    (-0.0, "-0"),
    (0.1, "0.1"),
    (1.5, "1.5"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1e15, "1000000000000000"),
    (1e16, "10000000000000000"),
    (1e17, "1.0e+17"),
    (1e25, "1.0e+25"),
    (1.5e300, "1.5e+300"),
    (0.0001, "0.0001"),
    (0.00001, "1.0e-5"),
    (1.5e-7, "1.5e-7"),
    (5e-324, "5.0e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
]


@pytest.mark.parametrize(("value", "expected"), VECTORS, ids=[repr(v[0]) for v in VECTORS])
def test_php_vectors(value: Any, expected: str) -> None:
    assert php_json_encode(value) == expected


def test_compact_matches_flags_zero() -> None:
    value = {"a": [1, 2.0, {"b": None}], "c": {}, "d": "x/y"}
    assert php_json_encode(value, pretty=False) == '{"a":[1,2,{"b":null}],"c":[],"d":"x\\/y"}'


def test_no_trailing_newline() -> None:
    assert not php_json_encode({"a": 1}).endswith("\n")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_errors(value: float) -> None:
    with pytest.raises(ValueError):
        php_json_encode([value])


def test_unencodable_types_are_errors() -> None:
    with pytest.raises(TypeError):
        php_json_encode({"a": object()})
    with pytest.raises(TypeError):
        php_json_encode({(1, 2): "tuple key"})


@pytest.mark.parametrize(("value", "expected"), [
    (0.1 + 0.2, "0.3"), (1e15, "1.0E+15"), (123456789012345.0, "1.2345678901234E+14"),
    (2.5, "2.5"), (100.0, "100"),
])
def test_php_string_conversion_precision_14(value: float, expected: str) -> None:
    assert php_float(value, precision=14, exponent="E") == expected
