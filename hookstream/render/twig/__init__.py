"""A Twig 3 engine for GLPI's webhook templates: Twig's lexer and grammar, GLPI's sandbox
checked at compile time, compiled to Python closures over JSON data, PHP 8's value
semantics. `compile_template` is the entry point; `hookstream.render.templates` uses it."""

from __future__ import annotations

from hookstream.render.twig.engine import Compiled, compile_template
from hookstream.render.twig.errors import TwigError, TwigRuntimeError, TwigSyntaxError

__all__ = ["Compiled", "TwigError", "TwigRuntimeError", "TwigSyntaxError", "compile_template"]
