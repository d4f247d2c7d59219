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
from json.encoder import encode_basestring
from typing import Any

from hookstream.render.budget import LimitExceeded
from hookstream.render.glpi_json import php_json_encode
from hookstream.render.twig import nodes as n
from hookstream.render.twig.compile_expr import ExprCompiler, Fn
from hookstream.render.twig.errors import TwigRuntimeError
from hookstream.render.twig.escape import escape
from hookstream.render.twig.php import Markup, PhpError, array_items, is_array, to_bool
from hookstream.render.twig.runtime import MISSING, Ctx, markup, printable

__all__ = ["St", "TemplateCompiler"]

St = Callable[[Ctx, list[str]], None]
_Macro = tuple[list[tuple[str, Any]], St]


def _run_all(statements: list[St]) -> St:
    if len(statements) == 1:
        return statements[0]

    def run(ctx: Ctx, out: list[str]) -> None:
        for statement in statements:
            statement(ctx, out)

    return run


def _json_value(value: Any) -> str:
    if isinstance(value, str):
        return encode_basestring(value)[1:-1]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return php_json_encode(value, pretty=False)


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
                    raise _located_error(node, e) from e
                ctx.emit(out, fmt.format(value))

            return run_one

        def run_many(ctx: Ctx, out: list[str]) -> None:
            try:
                values = [printer(ctx) for printer in printers]
            except (TwigRuntimeError, LimitExceeded, RecursionError):
                raise
            except Exception as e:
                raise _locate(ctx, printers, prints, e) from e
            ctx.emit(out, fmt.format(*values))

        return run_many

    def statement(self, node: n.Node) -> St:
        compiled: St = getattr(self, f"_{type(node).__name__.lower()}")(node)
        if isinstance(node, n.Text):
            return compiled
        return _guarded(node, compiled)

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
                and self._safe(expr.then, strategy) != self._safe(expr.otherwise, strategy)):
            test = self.exprs.compile(expr.test)
            then = self._printer(expr.then, json_context)
            otherwise = self._printer(expr.otherwise, json_context)
            return lambda c: then(c) if to_bool(test(c)) else otherwise(c)
        value = self._expr(expr)
        if strategy and not self._safe(expr, strategy):
            return lambda c: _escaped(value(c), strategy)
        if self.mode == "json" and json_context != "text" and not self._safe(expr, "json"):
            if json_context == "string":
                return lambda c: _json_string(value(c))
            return lambda c: _json_in_value(value(c))
        return lambda c: _printed(value(c))

    def _safe(self, expr: n.Expr, strategy: str) -> bool:
        """Twig's safe analysis: is the expression's output already escaped for `strategy`?
        For hookstream's JSON escaping ("json"), `json_encode` and escaped output are safe,
        constants are not (a quote in a literal must still be escaped)."""
        if isinstance(expr, n.MacroCall) or (isinstance(expr, n.Const) and strategy != "json"):
            return True
        if isinstance(expr, n.Conditional):
            return self._safe(expr.then, strategy) and self._safe(expr.otherwise, strategy)
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

    def _expr(self, expr: n.Expr) -> Fn:
        """An expression, with nl2br's input HTML-escaped first: Twig pre-escapes it
        whatever the autoescape setting, unless the input is safe."""
        self._pre_escape(expr)
        return self.exprs.compile(expr)

    def _pre_escape(self, expr: n.Expr) -> None:
        for child in _children(expr):
            self._pre_escape(child)
        if isinstance(expr, n.Filter) and expr.name == "nl2br" and not self._safe(
                expr.node, "html"):
            expr.node = n.Filter(expr.line, expr.col, expr.node, "escape",
                                 [n.Const(expr.line, expr.col, "html")], {})

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


def _guarded(node: n.Node, statement: St) -> St:
    """Failures of a statement, located at it, when no inner construct located them."""
    construct = type(node).__name__.lower()

    def run(ctx: Ctx, out: list[str]) -> None:
        try:
            statement(ctx, out)
        except (TwigRuntimeError, LimitExceeded, RecursionError):
            raise
        except PhpError as e:
            raise TwigRuntimeError(f"{construct}: {e}", node.line, node.col) from e
        except Exception as e:
            raise TwigRuntimeError(f"{construct} failed ({type(e).__name__})", node.line,
                                   node.col) from e

    return run


def _located_error(node: n.Node, error: Exception) -> TwigRuntimeError:
    if isinstance(error, PhpError):
        return TwigRuntimeError(f"print: {error}", node.line, node.col)
    return TwigRuntimeError(f"print failed ({type(error).__name__})", node.line, node.col)


def _locate(ctx: Ctx, printers: list[Callable[[Ctx], str]], prints: list[n.Print],
            error: Exception) -> TwigRuntimeError:
    """The print of a chunk that failed: the printers are pure, so run them again one by one."""
    for printer, node in zip(printers, prints, strict=True):
        try:
            printer(ctx)
        except Exception as e:
            return _located_error(node, e)
    return _located_error(prints[0], error)


def _printed(value: Any) -> str:
    return value if type(value) is str else printable(value)


def _escaped(value: Any, strategy: str) -> str:
    if isinstance(value, Markup):
        return value
    return escape(value, strategy) if isinstance(value, str) else printable(value)


def _json_string(value: Any) -> str:
    if isinstance(value, Markup):
        return value
    return encode_basestring(_printed(value))[1:-1]


def _json_in_value(value: Any) -> str:
    if isinstance(value, Markup):
        return value
    return _json_value(value)

