"""Lexer: Twig's whitespace control and newline rule, verbatim, interpolation, errors."""

from __future__ import annotations

import pytest

from hookstream.render.twig.errors import TwigSyntaxError
from hookstream.render.twig.lexer import tokenize

TEXTS = [
    ("a {% if true %}\nb{% endif %}\nc", ["a ", "b", "c"]),  # one newline after %} dropped
    ("{{ x }}\nb", ["\nb"]),  # ...but not after }}
    ("a  {{- x -}}  b", ["a", "b"]),
    ("a \t\n {{~ x ~}} \t\n b", ["a \t\n", "\n b"]),  # ~ keeps newlines
    ("a{# c #}\nb", ["a", "b"]),
    ("{% verbatim %}{{ x }}{% endverbatim %}", ["{{ x }}"]),
    ("a\r\nb", ["a\nb"]),
]


@pytest.mark.parametrize(("source", "texts"), TEXTS)
def test_text_between_tags(source: str, texts: list[str]) -> None:
    assert [t.value for t in tokenize(source) if t.kind == "text"] == texts


def test_interpolation_tokens() -> None:
    kinds = [t.kind for t in tokenize('{{ "a#{b}c" }}')]
    assert kinds == ["{{", "string", "#{", "name", "}#", "string", "}}", "end of template"]


def test_word_operators_need_a_boundary() -> None:
    values = [t.value for t in tokenize("{{ a not in b }}{{ a.in }}{{ x starts  with y }}")]
    assert "not in" in values and "starts with" in values and "in" in values


@pytest.mark.parametrize(("source", "where", "what"), [
    ("{{ x", (1, 5), 'unclosed "variable"'),
    ("ab\n{{ (x }}", (2, 4), 'unclosed "("'),
    ("{{ x ] }}", (1, 6), 'unexpected "]"'),
    ("{{ x @ }}", (1, 6), 'unexpected character "@"'),
    ("{# open", (1, 3), "unclosed comment"),
])
def test_errors_are_located(source: str, where: tuple[int, int], what: str) -> None:
    with pytest.raises(TwigSyntaxError) as info:
        tokenize(source)
    assert (info.value.line, info.value.message) == (where[0], what)
