"""Render one template through hookstream and build the matching oracle cases.

For each template two comparisons are made:

- "glpi": hookstream with `escaping: glpi` against Twig as GLPI runs it (HTML autoescape,
  `"` pre-escaped in the data): byte for byte.
- "hookstream": hookstream's default escaping against Twig with autoescape off. A text
  template must match byte for byte; in a JSON template each `{{ }}` that hookstream
  JSON-escapes is wrapped, for Twig, in the PHP filter doing that escaping
  (`hs_json_string` or `hs_json_value`, twig_oracle.php), so that Twig's evaluation of
  every expression is still what is compared. That escaping is the one intended
  difference from Twig in this mode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookstream.errors import InvalidTemplate, RenderError
from hookstream.render import RenderLimits, compile_templates, render_request
from hookstream.render.twig import nodes as n
from hookstream.render.twig.jsonshape import mark_json
from hookstream.render.twig.lexer import VAR_END, VAR_START, tokenize
from hookstream.render.twig.parser import parse
from hookstream.render.twig.safety import is_safe

__all__ = ["Case", "hookstream_render", "load_corpus", "oracle_cases"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW_S = 1_762_245_332.0  # 2025-11-04 08:35:32 UTC; the corpus avoids "now"


@dataclass
class Case:
    name: str
    template: str
    flags: set[str] = field(default_factory=set)
    fixture: str = "Ticket"
    timezone: str = "UTC"  # the instance's (PHP's default time zone in GLPI)

    def context(self) -> dict[str, Any]:
        item = json.loads((FIXTURES / f"{self.fixture}.json").read_text())
        parent = None
        if (FIXTURES / f"{self.fixture}_parent_Ticket.json").exists():
            parent = json.loads((FIXTURES / f"{self.fixture}_parent_Ticket.json").read_text())
        return {"event": "update", "item": item, "parent_item": parent}


def load_corpus(path: Path) -> list[Case]:
    """`=== name flag...` starts a template; it runs to the next header, its final newline
    dropped. Lines before the first header are comments."""
    cases: list[Case] = []
    lines: list[str] = []
    current: Case | None = None
    for line in path.read_text().split("\n"):
        if line.startswith("=== "):
            if current is not None:
                current.template = "\n".join(lines)
                cases.append(current)
            name, *flags = line[4:].split()
            current = Case(name, "", set(flags))
            for flag in flags:
                if flag.startswith("fixture="):
                    current.fixture = flag.split("=", 1)[1]
                elif flag.startswith("tz="):
                    current.timezone = flag.split("=", 1)[1]
            lines = []
        elif current is not None:
            lines.append(line)
    if current is not None:
        current.template = "\n".join(lines).rstrip("\n")
        cases.append(current)
    return cases


def hookstream_render(template: str, context: dict[str, Any], escaping: str,
                      timezone: str = "UTC") -> tuple[str, str]:
    try:
        compiled = compile_templates("u", {}, template, False, escaping=escaping)
        rendered = render_request(compiled, context["event"], context["item"],
                                  context["parent_item"], NOW_S, RenderLimits(timezone=timezone))
    except (InvalidTemplate, RenderError) as e:
        return "error", str(e)
    return "out", rendered.body.decode()


def _json_wrapped(template: str) -> str | None:
    """The template for Twig with hookstream's JSON escaping made explicit, None when the
    template is not JSON (or does not compile)."""
    try:
        tree = parse(template)
    except Exception:
        return None
    if not mark_json(tree):
        return None
    contexts: dict[tuple[int, int], tuple[str, bool]] = {}
    for node in _prints(tree):
        contexts[(node.line, node.col)] = (node.json_context, is_safe(node.expr, "json"))
    tokens = tokenize(template)
    out, position = [], 0
    for i, token in enumerate(tokens):
        if token.kind != VAR_START:
            continue
        context, safe = contexts.get((token.line, token.col), ("text", True))
        if safe or context == "text":
            continue
        end = next(t for t in tokens[i:] if t.kind == VAR_END)
        start = tokens[i + 1].pos
        wrapper = "hs_json_string" if context == "string" else "hs_json_value"
        out.append(template[position:start])
        out.append(f"({template[start:end.pos]})|{wrapper}")
        position = end.pos
    out.append(template[position:])
    return "".join(out)


def _prints(tree: n.Template) -> list[n.Print]:
    found: list[n.Print] = []

    def walk(body: list[n.Node]) -> None:
        for node in body:
            if isinstance(node, n.Print):
                found.append(node)
            for child in (getattr(node, "body", None), getattr(node, "otherwise", None)):
                if isinstance(child, list):
                    walk(child)
            if isinstance(node, n.If):
                for _, branch in node.branches:
                    walk(branch)

    walk(tree.body)
    for macro in tree.macros.values():
        walk(macro.body)
    return found


def oracle_cases(case: Case) -> list[dict[str, Any]]:
    """The two Twig renders this case is compared with: GLPI's, then hookstream's mode."""
    context = case.context()
    wrapped = _json_wrapped(case.template)
    return [
        {"template": case.template, "context": context, "mode": "glpi",
         "timezone": case.timezone},
        {"template": wrapped if wrapped is not None else case.template, "context": context,
         "mode": "json" if wrapped is not None else "raw", "timezone": case.timezone},
    ]
