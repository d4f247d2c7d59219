"""The processor's fast paths give exactly what the plain code gives: orjson-based default
payload vs the exact PHP encoder, orjson.loads vs json.loads, constant templates vs a render,
and the per-event default body cache."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from hookstream.errors import RenderError
from hookstream.matching import load_json
from hookstream.render import RenderLimits, compile_templates, render_request
from hookstream.render.glpi_json import _fast_pretty, default_payload, php_json_encode
from tests.conftest import FIXTURES

ITEM_FILES = sorted(FIXTURES.glob("*.json")) + sorted(FIXTURES.glob("latest/*.json"))
BODIES = sorted(FIXTURES.glob("**/webhook_default_payloads/*.json"))
# An empty list would make pytest skip the parametrised tests below without a word.
assert ITEM_FILES and BODIES, f"GLPI fixtures missing from {FIXTURES}"
NOW_S = 1_762_245_332.0
# quotes, backslashes, slashes, control characters, DEL, Latin-1, BMP, astral, spaces
ALPHABET = ['"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "a", "Z", "0",
            " ", "  ", "{}", "é", "«", "\u00ff", "\u0100", "€", "\u2028", "\uffff", "😀",
            "\U0010ffff", "\\x", "\\u00e9", "\\U0001f600", ":", ",", "[", "]"]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(8)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return random_text(rng)
    if kind == 1:
        return rng.choice([0, -1, 7, 2**31, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 10**30])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e25, 4.0])
    if kind in (4, 5):
        return rng.choice(["x", "", "é/é", 5])
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [rng.choice(["0", "1", "a", "b/c", "é", "😀", "", " k  ", "\n"]) for _ in range(4)]
    return {k: random_value(rng, depth + 1) for k in keys[: rng.randrange(5)]}


def test_fast_default_payload_equals_exact_encoder_on_random_values() -> None:
    rng = random.Random(20251104)
    fast_taken = 0
    for _ in range(5000):
        item = {"id": 1, "v": random_value(rng), "w": random_value(rng)}
        parent = None if rng.random() < 0.5 else {"p": random_value(rng)}
        body: dict[str, Any] = {"item": item, "event": "new"}
        if parent is not None:
            body["parent_item"] = parent
        exact = php_json_encode(body).encode()
        fast = _fast_pretty(body)
        fast_taken += fast is not None
        assert fast is None or fast == exact, body
        assert default_payload(item, "new", parent) == exact
    assert fast_taken > 1000  # the fast path is exercised, not always refused


@pytest.mark.parametrize("path", BODIES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fast_default_payload_on_fixture_bodies(path: Path) -> None:
    expected = path.read_bytes()
    assert _fast_pretty(json.loads(expected)) == expected


@pytest.mark.parametrize(
    "value",
    [{}, {"a": {}}, {"0": "a", "1": "b"}, {"a": 1.5}, {"a": (1, 2)}, {5: "x"},
     {"a": "\ud800"}, {"a": 2**64}, {"a": True.__class__(1)}],
    ids=repr,
)
def test_fast_path_refuses_what_it_could_get_wrong(value: Any) -> None:
    if isinstance(value, dict) and value.get("a") is True:
        assert _fast_pretty(value) == php_json_encode(value).encode()
    else:
        assert _fast_pretty(value) is None


@pytest.mark.parametrize("path", ITEM_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_load_json_matches_json_loads_on_fixtures(path: Path) -> None:
    text = json.dumps(json.loads(path.read_text()), ensure_ascii=False)
    assert _typed(load_json(text)) == _typed(json.loads(text))


@pytest.mark.parametrize("text", [
    "-0", "1E400", "NaN", "123456789012345678901234567890", "-9223372036854775809",
    "18446744073709551616", '{"a": 1, "b": 2, "a": 3}', '"\\ud800"', '"\\u00e9\\ud83d\\ude00"',
    "[1.0, -0.0, 1e-400, 0.1, 5e-324, 1.7976931348623157e308]", '{"a": "1234567890123456789"}',
])
def test_load_json_matches_json_loads_on_edge_cases(text: str) -> None:
    assert repr(_typed(load_json(text))) == repr(_typed(json.loads(text)))


def test_load_json_raises_json_errors() -> None:
    with pytest.raises(json.JSONDecodeError):
        load_json("{nope")


def _typed(value: Any) -> Any:
    """The value with every leaf's type made visible (1 == 1.0 == True otherwise)."""
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize("source", [
    "https://example.com/hook", "", "a\r\nb\n", "text with } and { and %", "x\n\n",
    "{% verbatim %}{{ item.id }}{% endverbatim %}",
])
def test_constant_templates_render_as_twig_would(source: str) -> None:
    templates = compile_templates(source, {"X-A": source}, source, False)
    if "{%" not in source:
        assert templates.url.constant is not None
    # the same text through the engine: a leading empty expression stops the constant shortcut
    run = "{{ '' }}" + source
    twig = compile_templates(run, {"X-A": run}, run if source.strip() else source, False)
    assert twig.url.constant is None
    assert _outcome(templates) == _outcome(twig)


def _outcome(templates: Any) -> Any:
    try:
        return render_request(templates, "new", {}, None, NOW_S)
    except RenderError as e:
        return str(e)


def test_constant_template_still_bounded_by_the_body_limit() -> None:
    templates = compile_templates("https://x/", {}, "x" * 100, False)
    with pytest.raises(Exception, match="larger than"):
        render_request(templates, "new", {}, None, NOW_S, RenderLimits(max_body_bytes=10))


def test_default_body_encoded_once_per_event() -> None:
    templates = compile_templates("https://x/{{ item.id }}", {}, None, True)
    item, shared = {"id": 7, "name": "a/é"}, {}  # type: ignore[var-annotated]
    first = render_request(templates, "new", item, None, NOW_S, default_bodies=shared)
    assert first.body == default_payload(item, "new", None)
    shared["default"] = b"reused"
    assert render_request(templates, "new", item, None, NOW_S,
                          default_bodies=shared).body == b"reused"


@pytest.mark.parametrize(
    "value",
    [{"a  b": 1}, {"a": ["x  y"]}, {"a": {"b": {"c  ": "  "}}}, {"a": [{"b": ["   "]}]},
     {"a": "  "}, {"a": "x", "b": [1, "y  "]}],
    ids=repr,
)
def test_two_spaces_in_a_key_or_string_are_not_taken_for_indent(value: Any) -> None:
    assert _fast_pretty(value) == php_json_encode(value).encode()
