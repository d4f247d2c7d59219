"""A compiled Twig template: `compile_template(source, mode)` once per definition version,
then `render(...)` per event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookstream.render.budget import Budget, LimitExceeded
from hookstream.render.twig import nodes as n
from hookstream.render.twig.compiler import St, TemplateCompiler
from hookstream.render.twig.jsonshape import mark_json
from hookstream.render.twig.parser import parse
from hookstream.render.twig.runtime import Ctx

__all__ = ["Compiled", "compile_template"]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A template ready to render; `constant` is its text when it holds no Twig at all."""

    run: St
    is_json: bool
    constant: str | None

    def render(self, context: Mapping[str, Any], budget: Budget, timezone: str = "UTC") -> str:
        if self.constant is not None:
            if len(self.constant) > budget.limits.max_body_bytes:
                raise LimitExceeded("output larger than the body size limit")
            return self.constant
        ctx = Ctx(dict(context), budget, {}, timezone)
        out: list[str] = []
        self.run(ctx, out)
        return "".join(out)


def compile_template(source: str, mode: str = "text", detect_json: bool = False) -> Compiled:
    """Compile `source`. `mode`: "text" (Twig, no autoescape), "glpi" (GLPI byte for byte)
    or, with `detect_json`, "json" when the template's structure is JSON.

    Raises `TwigSyntaxError` naming line, column and construct."""
    template = parse(source)
    is_json = detect_json and mark_json(template)
    if is_json and mode == "text":
        mode = "json"
    constant = None
    if not template.macros and all(isinstance(node, n.Text) for node in template.body):
        constant = "".join(node.data for node in template.body)  # type: ignore[attr-defined]
    return Compiled(TemplateCompiler(mode, template.macros).block(template.body), is_json,
                    constant)
