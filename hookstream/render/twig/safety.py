"""Twig's safe analysis, decided at compile time: is an expression's output already
escaped for a strategy (then autoescape leaves it alone), and nl2br's pre-escaping."""

from __future__ import annotations

from hookstream.render.twig import nodes as n

__all__ = ["is_safe", "pre_escape"]


def is_safe(expr: n.Expr, strategy: str) -> bool:
    """Twig's safe analysis: is the expression's output already escaped for `strategy`?
    For hookstream's JSON escaping ("json"), `json_encode` and escaped output are safe,
    constants are not (a quote in a literal must still be escaped)."""
    if isinstance(expr, n.MacroCall) or (isinstance(expr, n.Const) and strategy != "json"):
        return True
    if isinstance(expr, n.Conditional):
        return is_safe(expr.then, strategy) and is_safe(expr.otherwise, strategy)
    if not isinstance(expr, n.Filter):
        return False
    if expr.name == "raw":
        return True
    if strategy == "json":
        return expr.name in ("json_encode", "escape", "nl2br")
    if expr.name == "escape":
        first = expr.args[0] if expr.args else expr.kwargs.get("strategy")
        if first is None:
            return strategy == "html"
        # Twig: html_attr output is safe in HTML too
        return isinstance(first, n.Const) and (first.value == strategy or (
            first.value == "html_attr" and strategy == "html"))
    return expr.name == "nl2br" and strategy == "html"


def pre_escape(expr: n.Expr) -> None:
    for child in _children(expr):
        pre_escape(child)
    if isinstance(expr, n.Filter) and expr.name == "nl2br" and not is_safe(
            expr.node, "html"):
        expr.node = n.Filter(expr.line, expr.col, expr.node, "escape",
                             [n.Const(expr.line, expr.col, "html")], {})


def _children(expr: n.Expr) -> list[n.Expr]:
    found: list[n.Expr] = []
    names: tuple[str, ...] = expr.__slots__
    for name in names:
        value = getattr(expr, name)
        if isinstance(value, n.Expr):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, n.Expr):
                    found.append(item)
                elif isinstance(item, tuple):
                    found.extend(x for x in item if isinstance(x, n.Expr))
        elif isinstance(value, dict):
            found.extend(v for v in value.values() if isinstance(v, n.Expr))
    return found
