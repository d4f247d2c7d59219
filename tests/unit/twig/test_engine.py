"""The engine end to end: Twig's scoping, macros, escaping modes, located errors."""

from __future__ import annotations

from typing import Any

import pytest

from hookstream.render.budget import Budget, RenderLimits
from hookstream.render.twig.engine import compile_template
from hookstream.render.twig.errors import TwigRuntimeError, TwigSyntaxError

NOW_S = 1_762_245_332.0
DATA = {"item": {"id": 7, "name": 'a "b" <c>', "team": [{"n": "x"}, {"n": "y"}]},
        "event": "new"}


def run(source: str, mode: str = "text", data: dict[str, Any] | None = None) -> str:
    template = compile_template(source, mode, detect_json=True)
    return template.render(DATA if data is None else data, Budget(RenderLimits(), NOW_S))


@pytest.mark.parametrize(("source", "expected"), [
    ("{% set n = 0 %}{% for t in item.team %}{% set n = n + 1 %}{% endfor %}{{ n }}", "2"),
    ("{% for t in item.team %}{% set new = 1 %}{% endfor %}({{ new }})", "()"),
    ("{% set t = 'k' %}{% for t in item.team %}{% endfor %}{{ t }}", "k"),
    ("{% set v = 1 %}{% block b %}{% set v = 2 %}{% endblock %}{{ v }}", "1"),
    ("{% if true %}{% set v = 3 %}{% endif %}{{ v }}", "3"),
    ("{% for a in [1, 2] %}{% for b in [3] %}{{ loop.parent.loop.index }}{% endfor %}{% endfor %}",
     "12"),
    ("{% macro m(a, b = 'd') %}{{ a }}{{ b }}{{ varargs|join }}{% endmacro %}"
     "{{ _self.m(1) }}{{ _self.m(1, 2, 3) }}{{ _self.m(b = 5, a = 4) }}", "1d12345"),
    ("{% import _self as f %}{% macro up(s) %}{{ s|upper }}{% endmacro %}{{ f.up('a') }}", "A"),
    ("{{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ -5|abs }} {{ 'abcdef'[1:2] }}", "-4 512 -5 bc"),
    ('{{ "#{item.id + 1}!" }}', "8!"),
])
def test_twig_semantics(source: str, expected: str) -> None:
    assert run(source) == expected


@pytest.mark.parametrize(("mode", "expected"), [
    ("text", '{"n": "a \\"b\\" <c>", "id": 7, "none": null, "raw": "a "b" <c>"}'),
    ("glpi", '{"n": "a &quot;b&quot; &lt;c&gt;", "id": 7, "none": , "raw": "a "b" <c>"}'),
])
def test_json_body_escaping(mode: str, expected: str) -> None:
    source = '{"n": "{{ item.name }}", "id": {{ item.id }}, "none": {{ item.x }}, ' \
             '"raw": "{{ item.name|raw }}"}'
    assert run(source, mode) == expected


def test_errors_name_line_column_and_construct() -> None:
    with pytest.raises(TwigSyntaxError) as syntax:
        compile_template("ok\n{{ item|nope }}")
    assert (syntax.value.line, syntax.value.col, syntax.value.message) == (
        2, 9, 'filter "nope" is not allowed')
    with pytest.raises(TwigRuntimeError) as runtime:
        run("{% for t in item.team %}\n  {{ t.n * 2 }}{% endfor %}")
    assert str(runtime.value) == (
        'line 2, column 10: operator "*": unsupported operand types: string * number')
    assert "x" not in runtime.value.message  # the value itself is never quoted


def test_context_is_never_reached_through_python_attributes() -> None:
    class Secret:
        token = "s3cr3t"

    with pytest.raises(TwigSyntaxError):
        compile_template("{{ item.__class__ }}")
    assert run("{{ item.token }}|", data={"item": Secret()}) == "|"
