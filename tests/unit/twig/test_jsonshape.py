"""Whether a body is JSON is read from its structure, and each print gets its JSON context."""

from __future__ import annotations

import pytest

from hookstream.render.twig import nodes as n
from hookstream.render.twig.jsonshape import mark_json
from hookstream.render.twig.parser import parse

SHAPES = [
    ('{"a": "{{ x }}", "b": {{ y }}}', True),
    ("[{% for m in t %}{\"n\": \"{{ m }}\"}{% if not loop.last %},{% endif %}{% endfor %}]", True),
    ('{% set v = 1 %}\n{"v": {{ v }}}', True),
    ("{# c #}[1, true, null, -2.5e3]", True),
    ("[GLPI] Ticket {{ x }} updated", False),
    ("{{ x|json_encode }}", False),
    ('{"a": 1', False),
    ('{"a": "open}', False),
    ("text {\"a\": 1}", False),
    ('{"a": {{ x }}px}', False),  # letters outside a string are no JSON token
]


@pytest.mark.parametrize(("source", "is_json"), SHAPES)
def test_json_structure(source: str, is_json: bool) -> None:
    assert mark_json(parse(source)) is is_json


def test_print_contexts() -> None:
    tree = parse('{"a": "x {{ s }}", "b": {{ v }}, "c": [{{ w }}, "{{ t }}"]}')
    assert mark_json(tree)
    prints = [node for node in tree.body if isinstance(node, n.Print)]
    assert [p.json_context for p in prints] == ["string", "value", "value", "string"]
