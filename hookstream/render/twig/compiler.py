"""Statements compiled into closures `f(ctx, out)` that append text to `out`, and the
printing rules of the three output modes:

- "text": Twig with autoescape off (URL, headers, text bodies);
- "json": as "text", plus JSON escaping of each `{{ }}` by where it lands (see jsonshape);
  values Twig deems safe (`raw`, `escape`, macro output, captures) and `json_encode` are
  written as they are;
- "glpi": GLPI byte for byte, Twig's HTML autoescape (constants and safe filters exempt,
  per branch of a conditional, `nl2br` pre-escaping its input).

Scoping is Twig's: `for` restores variables it did not change and drops those it created,
`block` and macros run on a copy, `if` and `set` write to the current scope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hookstream.render.budget import LimitExceeded
from hookstream.render.twig import nodes as n
from hookstream.render.twig.compile_expr import ExprCompiler, Fn
from hookstream.render.twig.errors import TwigRuntimeError
from hookstream.render.twig.output import (
    St,
    escaped,
    guarded,
    json_in_value,
    json_string,
    locate,
    located_error,
    printed,
)
from hookstream.render.twig.php import array_items, is_array, to_bool
from hookstream.render.twig.runtime import MISSING, Ctx, markup
from hookstream.render.twig.safety import is_safe, pre_escape

__all__ = ["St", "TemplateCompiler"]
_Macro = tuple[list[tuple[str, Any]], St]


def _run_all(statements: list[St]) -> St:
    if len(statements) == 1:
        return statements[0]

    def run(ctx: Ctx, out: list[str]) -> None:
        for statement in statements:
            statement(ctx, out)

    return run


class TemplateCompiler:
    def __init__(self, mode: str, macros: dict[str, n.Macro]) -> None:
        self.mode = mode
        self.strategy: str | None = "html" if mode == "glpi" else None
        self.exprs = ExprCompiler(self._call_macro)
        self.macro_defs = macros
        self.macros: dict[str, _Macro] = {}
        for name, macro in macros.items():
            params = [(p, self.exprs.compile(d)(None)) for p, d in macro.params]  # type: ignore[arg-type]
            self.macros[name] = (params, self.block(macro.body))

    def block(self, body: list[n.Node]) -> St:
        statements: list[St] = []
        run: list[n.Node] = []
        for node in [*body, None]:
            if isinstance(node, (n.Text, n.Print)):
                run.append(node)
                continue
            if run:
                statements.append(self._chunk(run))
                run = []
            if node is not None:
                statements.append(self.statement(node))
        return _run_all(statements) if statements else (lambda ctx, out: None)

    def _chunk(self, run: list[n.Node]) -> St:
        """Consecutive text and prints as one statement: the values fill a format string
        (one C-level join per chunk rather than one call per piece)."""
        texts = [node.data.replace("{", "{{").replace("}", "}}") if isinstance(node, n.Text)
                 else "{}" for node in run]
        prints = [node for node in run if isinstance(node, n.Print)]
        printers = [self._printer(node.expr, node.json_context) for node in prints]
        fmt = "".join(texts)
        if not printers:
            text = fmt.format()
            return lambda ctx, out: ctx.emit(out, text)
        if len(printers) == 1:
            printer, node = printers[0], prints[0]

            def run_one(ctx: Ctx, out: list[str]) -> None:
                try:
                    value = printer(ctx)
                except (TwigRuntimeError, LimitExceeded, RecursionError):
                    raise
                except Exception as e:
                    raise located_error(node, e) from e
                ctx.emit(out, fmt.format(value))

            return run_one

        def run_many(ctx: Ctx, out: list[str]) -> None:
            try:
                values = [printer(ctx) for printer in printers]
            except (TwigRuntimeError, LimitExceeded, RecursionError):
                raise
            except Exception as e:
                raise locate(ctx, printers, prints, e) from e
            ctx.emit(out, fmt.format(*values))

        return run_many

    def statement(self, node: n.Node) -> St:
        compiled: St = getattr(self, f"_{type(node).__name__.lower()}")(node)
        if isinstance(node, n.Text):
            return compiled
        return guarded(node, compiled)

    def _text(self, node: n.Text) -> St:
        data = node.data
        return lambda ctx, out: ctx.emit(out, data)

    # -- printing --

    def _print(self, node: n.Print) -> St:
        value = self._printer(node.expr, node.json_context)
        return lambda ctx, out: ctx.emit(out, value(ctx))

    def _printer(self, expr: n.Expr, json_context: str) -> Callable[[Ctx], str]:
        strategy = self.strategy
        if (strategy and isinstance(expr, n.Conditional) and not expr.coalesce
                and is_safe(expr.then, strategy) != is_safe(expr.otherwise, strategy)):
            test = self.exprs.compile(expr.test)
            then = self._printer(expr.then, json_context)
            otherwise = self._printer(expr.otherwise, json_context)
            return lambda c: then(c) if to_bool(test(c)) else otherwise(c)
        value = self._expr(expr)
        if strategy and not is_safe(expr, strategy):
            return lambda c: escaped(value(c), strategy)
        if self.mode == "json" and json_context != "text" and not is_safe(expr, "json"):
            if json_context == "string":
                return lambda c: json_string(value(c))
            return lambda c: json_in_value(value(c))
        return lambda c: printed(value(c))

    def _expr(self, expr: n.Expr) -> Fn:
        """An expression, with nl2br's input HTML-escaped first: Twig pre-escapes it
        whatever the autoescape setting, unless the input is safe."""
        pre_escape(expr)
        return self.exprs.compile(expr)

    # -- control flow --

    def _if(self, node: n.If) -> St:
        branches = [(self._expr(test), self.block(body)) for test, body in node.branches]
        otherwise = self.block(node.otherwise)

        def run(ctx: Ctx, out: list[str]) -> None:
            for test, body in branches:
                if to_bool(test(ctx)):
                    body(ctx, out)
                    return
            otherwise(ctx, out)

        return run

    def _for(self, node: n.For) -> St:
        seq, body = self._expr(node.seq), self.block(node.body)
        otherwise = self.block(node.otherwise) if node.otherwise is not None else None
        key_name, value_name = node.key or "_key", node.value

        def run(ctx: Ctx, out: list[str]) -> None:
            parent = ctx.vars
            items = seq(ctx)
            if not items or not is_array(items):  # nothing runs, nothing changes
                if otherwise is not None:
                    otherwise(ctx, out)
                return
            pairs = enumerate(items) if type(items) is list else array_items(items)
            scope = dict(parent)
            length = len(items)
            ctx.vars = scope
            step = ctx.budget.step
            try:
                for i, (key, item) in enumerate(pairs):
                    step()
                    scope[key_name] = key
                    scope[value_name] = item
                    scope["loop"] = {"parent": parent, "index0": i, "index": i + 1,
                                     "first": i == 0, "revindex0": length - i - 1,
                                     "revindex": length - i, "length": length,
                                     "last": i == length - 1}
                    body(ctx, out)
            finally:
                ctx.vars = parent
            for name in (key_name, value_name, "loop"):
                scope.pop(name, None)
            for name in parent:  # Twig: array_intersect_key($context, $_parent) + $_parent
                value = scope.get(name, MISSING)
                if value is not MISSING:
                    parent[name] = value

        return run

    def _set(self, node: n.Set) -> St:
        names, values = node.names, [self._expr(v) for v in node.values]

        def run(ctx: Ctx, out: list[str]) -> None:
            results = [value(ctx) for value in values]
            ctx.vars.update(zip(names, results, strict=True))

        return run

    def _setcapture(self, node: n.SetCapture) -> St:
        name, body = node.name, self.block(node.body)

        def run(ctx: Ctx, out: list[str]) -> None:
            captured: list[str] = []
            body(ctx, captured)
            ctx.vars[name] = markup("".join(captured))

        return run

    def _block(self, node: n.Block) -> St:
        body = self.block(node.body)

        def run(ctx: Ctx, out: list[str]) -> None:
            saved = ctx.vars
            ctx.vars = dict(saved)
            try:
                body(ctx, out)
            finally:
                ctx.vars = saved

        return run

    def _apply(self, node: n.Apply) -> St:
        body = self.block(node.body)
        printer = self._printer(node.filters, "text")

        def run(ctx: Ctx, out: list[str]) -> None:
            captured: list[str] = []
            body(ctx, captured)
            ctx.vars["_capture_"] = markup("".join(captured))
            try:
                ctx.emit(out, printer(ctx))
            finally:
                del ctx.vars["_capture_"]

        return run

    def _autoescape(self, node: n.AutoEscape) -> St:
        saved, self.strategy = self.strategy, node.strategy
        try:
            return self.block(node.body)
        finally:
            self.strategy = saved

    def _call_macro(self, ctx: Ctx, name: str, args: list[Any], kwargs: dict[str, Any],
                    node: n.Node) -> Any:
        if name not in self.macros:
            raise TwigRuntimeError(f'macro "{name}" is not defined', node.line, node.col)
        params, body = self.macros[name]
        scope: dict[str, Any] = {}
        for i, (param, default) in enumerate(params):
            scope[param] = args[i] if i < len(args) else kwargs.pop(param, default)
        if kwargs:
            raise TwigRuntimeError(f'unknown argument for macro "{name}"', node.line, node.col)
        scope["varargs"] = args[len(params):]
        saved, ctx.vars = ctx.vars, scope
        ctx.enter()
        captured: list[str] = []
        try:
            body(ctx, captured)
        finally:
            ctx.vars = saved
            ctx.depth -= 1
        return markup("".join(captured))
