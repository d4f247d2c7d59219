"""The Jinja environment for GLPI's Twig: parser (arrows, `apply`), code generator, sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import ChainableUndefined, Context, LoopContext, Macro, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from hookstream.render.budget import BUDGET, Budget, LimitExceeded, checked, current_budget
from hookstream.render.twig_filters import FILTERS
from hookstream.render.twig_functions import FUNCTIONS
from hookstream.render.twig_values import TESTS, tilde, values_of

__all__ = ["Sandbox", "is_arrow"]

_MAX_INT_BITS = 4096
_MAX_CALL_DEPTH = 50


def loop_guard(iterable: Any, pairs: bool) -> Iterable[Any]:
    """Every `for` iterates through here: Twig's hash iteration, and the iteration budget."""
    if iterable is None or isinstance(iterable, Undefined):
        return ()
    if isinstance(iterable, Mapping):
        items: Iterable[Any] = iterable.items() if pairs else iterable.values()
    elif pairs:
        items = enumerate(values_of(iterable))
    else:
        items = iterable if isinstance(iterable, (list, tuple, str)) else values_of(iterable)
    return _counted(items, current_budget())


def _counted(items: Iterable[Any], budget: Budget) -> Iterator[Any]:
    for item in items:
        budget.step()
        yield item


# Jinja forbids custom node types, so an arrow function `(a, b) => body` is parsed into a
# Call of a marker InternalName (templates cannot create InternalNames) with a Tuple of
# InternalName parameters and the body; _CodeGenerator turns it into a Python lambda.
_ARROW = "arrow"


def is_arrow(node: nodes.Node) -> bool:
    callee = getattr(node, "node", None)
    return isinstance(node, nodes.Call) and isinstance(callee, nodes.InternalName) and (
        callee.name == _ARROW)


class _BindParams(NodeTransformer):
    def __init__(self, params: dict[str, nodes.InternalName]) -> None:
        self.params = params

    def visit_Name(self, node: nodes.Name) -> nodes.Node:
        return self.params.get(node.name, node) if node.ctx == "load" else node


class _Parser(Parser):
    def _arrow(self, params: tuple[str, ...], lineno: int) -> nodes.Call:
        self.stream.expect("gt")
        idents = {name: self.free_identifier(lineno) for name in params}
        body = _BindParams(idents).visit(self.parse_expression())
        marker = self.free_identifier(lineno)
        marker.name = _ARROW
        args = [nodes.Tuple(list(idents.values()), "param", lineno=lineno), body]
        return nodes.Call(marker, args, [], None, None, lineno=lineno)

    def parse_call_args(self) -> tuple[list[nodes.Expr], list[nodes.Keyword], Any, Any]:
        """Jinja's argument parser, plus Twig arrow functions as positional arguments."""
        token = self.stream.expect("lparen")
        args: list[nodes.Expr] = []
        kwargs: list[nodes.Keyword] = []
        while self.stream.current.type != "rparen":
            if args or kwargs:
                self.stream.expect("comma")
                if self.stream.current.type == "rparen":
                    break
            current = self.stream.current
            if current.type == "name" and self.stream.look().type == "assign":
                self.stream.skip(2)
                if self.stream.current.type == "gt":  # v => body
                    args.append(self._arrow((current.value,), current.lineno))
                else:
                    kwargs.append(nodes.Keyword(current.value, self.parse_expression(),
                                                lineno=current.lineno))
                continue
            if kwargs:
                self.fail("positional argument after keyword argument", token.lineno)
            expr = self.parse_expression()
            if self.stream.current.type == "assign" and self.stream.look().type == "gt":
                names = expr.items if isinstance(expr, nodes.Tuple) else [expr]
                if not all(isinstance(n, nodes.Name) for n in names):
                    self.fail("arrow function parameters must be names", token.lineno)
                next(self.stream)
                expr = self._arrow(tuple(n.name for n in names), token.lineno)  # type: ignore[attr-defined]
            args.append(expr)
        self.stream.expect("rparen")
        return args, kwargs, None, None


class _ApplyTag(Extension):
    """Twig's `{% apply filter %}...{% endapply %}`, Jinja's `{% filter %}` block."""

    tags = {"apply"}  # noqa: RUF012 - Jinja reads this class attribute

    def parse(self, parser: Parser) -> nodes.Node:
        node = nodes.FilterBlock(lineno=next(parser.stream).lineno)
        node.filter = parser.parse_filter(None, start_inline=True)  # type: ignore[assignment]
        node.body = parser.parse_statements(("name:endapply",), drop_needle=True)
        return node


class _CodeGenerator(CodeGenerator):
    def visit_Call(
        self, node: nodes.Call, frame: Frame, forward_caller: bool = False
    ) -> None:
        if not is_arrow(node):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        params, body = node.args
        self.write(f"(lambda {', '.join(p.name for p in params.items)}: ")  # type: ignore[attr-defined]
        self.visit(body, frame)
        self.write(")")


_LOOP_ATTRS = frozenset({"index", "index0", "revindex", "revindex0", "first", "last",
                         "length", "depth", "depth0", "previtem", "nextitem"})


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox speaking GLPI's Twig: arrow functions, `apply`, the allow-listed
    filters, functions and tests, and every call, loop and operator within the budget."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%", "//"})

    def __init__(self, finalize: Callable[[Any], str]) -> None:
        super().__init__(autoescape=False, undefined=ChainableUndefined, finalize=finalize,
                         extensions=[_ApplyTag], auto_reload=False, cache_size=0)
        self.globals.clear()
        self.globals.update({name: checked(fn) for name, fn in FUNCTIONS.items()})
        self.filters = {name: checked(fn) for name, fn in FILTERS.items()}
        self.filters["_loop_guard"] = loop_guard
        self.filters["_tilde"] = checked(tilde)
        self.tests = dict(TESTS)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Parser(self, source, name, filename).parse()

    def concat(self, parts: Iterable[str]) -> str:
        """Joins macro output and `{% set %}` captures: checked against the size limit."""
        parts = list(parts)
        budget = BUDGET.get(None)
        if budget is not None and sum(map(len, parts)) > budget.limits.max_body_bytes:
            raise LimitExceeded("value larger than the body size limit")
        return "".join(parts)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`a.b`: a key of a mapping, an item of a sequence or a `loop` field, nothing else."""
        if isinstance(obj, LoopContext) and attribute in _LOOP_ATTRS:
            return getattr(obj, attribute)
        if isinstance(obj, (str, list, tuple)) and not attribute.isdigit():  # 'a'.format
            raise SecurityError(f"cannot read {attribute:.40} of a {type(obj).__name__}")
        return self.getitem(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """`a[b]` with the same rules as `a.b`; missing keys are undefined (Twig non-strict)."""
        if isinstance(obj, Mapping):
            if argument in obj:
                return obj[argument]
            if isinstance(argument, int) and str(argument) in obj:
                return obj[str(argument)]
            return self.undefined(obj=obj, name=argument)
        if isinstance(obj, (list, tuple, str)):
            index = argument
            if isinstance(argument, str) and argument.lstrip("-").isdigit():
                index = int(argument)
            if isinstance(index, (int, slice)) and not isinstance(index, bool):
                try:
                    return obj[index]
                except IndexError:
                    return self.undefined(obj=obj, name=argument)
            return self.undefined(obj=obj, name=argument)
        if obj is None or isinstance(obj, Undefined):
            return self.undefined(obj=obj, name=argument)
        raise SecurityError(f"cannot read {argument!s:.40} of a {type(obj).__name__}")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Only allowed functions and the template's macros; depth and result size bounded."""
        if not isinstance(__obj, Macro) and __obj not in __self.globals.values():
            raise SecurityError("only the allowed functions and macros can be called")
        budget = current_budget()
        budget.step()
        budget.depth += 1
        try:
            if budget.depth > _MAX_CALL_DEPTH:
                raise LimitExceeded("macro recursion too deep")
            result = __context.call(__obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        budget.check_size(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Arithmetic that cannot allocate unbounded strings, lists or integers."""
        budget = current_budget()
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed; use |format")
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and operator == "**" and right > 0 and abs(left) > 1:
            bits = right * abs(left).bit_length()
        elif ints and operator == "*":
            bits = left.bit_length() + right.bit_length()
        else:
            bits = 0
        if bits > _MAX_INT_BITS:
            raise LimitExceeded("number too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, (str, list, tuple)) and isinstance(count, int)
                if sized and len(seq) * count > budget.limits.max_body_bytes:
                    raise LimitExceeded("value larger than the size limits")
        result = self.binop_table[operator](left, right)
        budget.check_size(result)
        return result
