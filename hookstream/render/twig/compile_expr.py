"""Expressions compiled into Python closures `f(ctx) -> value`.

Each closure does dict/list lookups on the context and calls the PHP-semantics helpers;
a failing operator, filter or function is reported with its line, column and name, and
never with a value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hookstream.render.budget import LimitExceeded
from hookstream.render.twig import nodes as n
from hookstream.render.twig.compare import loose_eq, spaceship
from hookstream.render.twig.errors import TwigRuntimeError
from hookstream.render.twig.filters_array import ARRAY_FILTERS
from hookstream.render.twig.filters_text import TEXT_FILTERS
from hookstream.render.twig.functions import FUNCTIONS
from hookstream.render.twig.php import (
    PhpError,
    arith,
    array_items,
    bitwise,
    normalize_key,
    pack,
    to_bool,
    to_int,
    to_number,
    to_str,
)
from hookstream.render.twig.runtime import Ctx, get_attr, has_attr, in_, matches, php_range
from hookstream.render.twig.tests import TESTS

__all__ = ["ExprCompiler", "Fn", "located"]

Fn = Callable[[Ctx], Any]
FILTERS: dict[str, Callable[..., Any]] = {**TEXT_FILTERS, **ARRAY_FILTERS}
_KEYWORD_ARGS = {"and": "and_", "from": "from_"}
MacroCaller = Callable[[Ctx, str, list[Any], dict[str, Any], n.Node], Any]


def located(node: n.Node, what: str, fn: Callable[[Ctx], Any]) -> Fn:
    """`fn` with its failures turned into a `TwigRuntimeError` naming `what` and where."""

    def run(ctx: Ctx) -> Any:
        try:
            return fn(ctx)
        except LimitExceeded as e:
            if str(e).startswith("line "):
                raise
            raise LimitExceeded(f"line {node.line}, column {node.col}: {what}: {e}") from e
        except (TwigRuntimeError, RecursionError):
            raise
        except PhpError as e:
            raise TwigRuntimeError(f"{what}: {e}", node.line, node.col) from e
        except Exception as e:  # a Python error inside a helper: name it, never its text
            raise TwigRuntimeError(f"{what} failed ({type(e).__name__})", node.line,
                                   node.col) from e

    return run


def _binary(op: str, left: Fn, right: Fn) -> Fn:
    if op in ("+", "-", "*", "/", "%", "**"):
        return lambda c: arith(op, left(c), right(c))
    if op == "~":
        def concat(c: Ctx) -> str:
            a, b = left(c), right(c)
            text = (a if type(a) is str else to_str(a)) + (b if type(b) is str else to_str(b))
            if len(text) > c.budget.limits.max_body_bytes:
                raise LimitExceeded("value larger than the size limits")
            return text
        return concat
    simple: dict[str, Callable[[Any, Any], Any]] = {
        "==": loose_eq, "!=": lambda a, b: not loose_eq(a, b),
        "<": lambda a, b: spaceship(a, b) < 0, ">": lambda a, b: spaceship(a, b) > 0,
        "<=": lambda a, b: spaceship(a, b) <= 0, ">=": lambda a, b: spaceship(a, b) >= 0,
        "<=>": spaceship, "in": in_, "not in": lambda a, b: not in_(a, b),
        "matches": matches,
        "b-and": lambda a, b: bitwise("&", a, b), "b-or": lambda a, b: bitwise("|", a, b),
        "b-xor": lambda a, b: bitwise("^", a, b),
        "//": lambda a, b: _floor_div(a, b),
    }
    if op in simple:
        operation = simple[op]
        return lambda c: operation(left(c), right(c))
    if op in ("starts with", "ends with"):
        # Twig: `is_string($left) && is_string($right) && ...`: no right operand for a
        # left one that is not a string.
        def affix(c: Ctx) -> bool:
            a = left(c)
            if not isinstance(a, str):
                return False
            b = right(c)
            if not isinstance(b, str):
                return False
            return a.startswith(b) if op == "starts with" else a.endswith(b)
        return affix
    if op in ("has some", "has every"):
        every = op == "has every"

        def quantifier(c: Ctx) -> bool:
            items, arrow = left(c), right(c)
            if not callable(arrow):
                raise PhpError(f'"{op}" needs an arrow function')
            for key, value in array_items(items):
                c.budget.step()
                if to_bool(arrow(value, key)) is not every:
                    return not every
            return every
        return quantifier
    if op == "and":
        return lambda c: to_bool(left(c)) and to_bool(right(c))
    if op == "or":
        return lambda c: to_bool(left(c)) or to_bool(right(c))
    if op == "..":
        return lambda c: php_range(c, left(c), right(c))
    raise ValueError(op)


def _floor_div(a: Any, b: Any) -> int:
    quotient = arith("/", a, b)
    return to_int(float(quotient) // 1)


def _call_args(args: list[Fn], kwargs: dict[str, Fn]) -> Callable[[Ctx], tuple[list[Any],
                                                                               dict[str, Any]]]:
    names = {_KEYWORD_ARGS.get(k, k): f for k, f in kwargs.items()}
    return lambda c: ([f(c) for f in args], {k: f(c) for k, f in names.items()})


class ExprCompiler:
    def __init__(self, call_macro: MacroCaller) -> None:
        self.call_macro = call_macro

    def compile(self, node: n.Expr) -> Fn:
        method = getattr(self, f"_{type(node).__name__.lower()}")
        result: Fn = method(node)
        return result

    def _const(self, node: n.Const) -> Fn:
        value = node.value
        return lambda c: value

    def _name(self, node: n.Name) -> Fn:
        name = node.name
        if name == "_self":
            return lambda c: "template"
        return lambda c: c.vars.get(name)

    def _getattr(self, node: n.GetAttr) -> Fn:
        obj, key = self.compile(node.node), self.compile(node.key)
        if isinstance(node.key, n.Const):
            constant = node.key.value
            if type(constant) is str:
                def lookup(c: Ctx) -> Any:
                    value = obj(c)  # the common case, a key of a JSON object, inline
                    if type(value) is dict and constant in value:
                        return value[constant]
                    return get_attr(value, constant)
                return lookup
            return lambda c: get_attr(obj(c), constant)
        return lambda c: get_attr(obj(c), key(c))

    def _hash(self, node: n.Hash) -> Fn:
        items = [(None if k is None else self.compile(k), self.compile(v)) for k, v in node.items]
        if all(k is None for k, _ in items):
            values = [v for _, v in items]
            return lambda c: [v(c) for v in values]

        def build(c: Ctx) -> Any:
            out: dict[int | str, Any] = {}
            for key, value in items:
                if key is None:
                    out[max((k for k in out if isinstance(k, int)), default=-1) + 1] = value(c)
                else:
                    out[normalize_key(key(c))] = value(c)
            return pack(out)

        return build

    def _unary(self, node: n.Unary) -> Fn:
        operand = self.compile(node.node)
        if node.op == "not":
            return lambda c: not to_bool(operand(c))
        sign = -1 if node.op == "-" else 1
        return located(node, f'operator "{node.op}"',
                        lambda c: arith("*", to_number(operand(c), "*"), sign))

    def _binary(self, node: n.Binary) -> Fn:
        return located(node, f'operator "{node.op}"',
                        _binary(node.op, self.compile(node.left), self.compile(node.right)))

    def _conditional(self, node: n.Conditional) -> Fn:
        test, then, otherwise = (self.compile(node.test), self.compile(node.then),
                                 self.compile(node.otherwise))
        if node.coalesce:
            def coalesce(c: Ctx) -> Any:
                value = test(c)
                return otherwise(c) if value is None else value
            return coalesce
        return lambda c: then(c) if to_bool(test(c)) else otherwise(c)

    def _filter(self, node: n.Filter) -> Fn:
        value, fn = self.compile(node.node), FILTERS[node.name]
        arguments = _call_args([self.compile(a) for a in node.args],
                               {k: self.compile(v) for k, v in node.kwargs.items()})

        def run(c: Ctx) -> Any:
            args, kwargs = arguments(c)
            c.budget.step()
            result = fn(c, value(c), *args, **kwargs)
            c.budget.check_size(result)
            return result

        return located(node, f'filter "{node.name}"', run)

    def _function(self, node: n.Function) -> Fn:
        fn = FUNCTIONS[node.name]
        arguments = _call_args([self.compile(a) for a in node.args],
                               {k: self.compile(v) for k, v in node.kwargs.items()})

        def run(c: Ctx) -> Any:
            args, kwargs = arguments(c)
            c.budget.step()
            result = fn(c, *args, **kwargs)
            c.budget.check_size(result)
            return result

        return located(node, f'function "{node.name}"', run)

    def _test(self, node: n.Test) -> Fn:
        if node.name == "defined":
            return self._defined(node.node)
        value, fn = self.compile(node.node), TESTS[node.name]
        args = [self.compile(a) for a in node.args]
        return located(node, f'test "{node.name}"',
                        lambda c: fn(value(c), *[a(c) for a in args]))

    def _defined(self, target: n.Expr) -> Fn:
        if isinstance(target, n.Name):
            name = target.name
            return lambda c: name == "_self" or name in c.vars
        if isinstance(target, n.GetAttr):
            obj, key = self.compile(target.node), self.compile(target.key)
            return lambda c: has_attr(obj(c), key(c))
        return lambda c: True

    def _arrow(self, node: n.Arrow) -> Fn:
        body, params = self.compile(node.body), node.params

        def make(c: Ctx) -> Callable[..., Any]:
            scope = dict(c.vars)

            def arrow(*args: Any) -> Any:
                if len(args) < len(params):
                    raise PhpError("too few arguments to the arrow function")
                saved = c.vars
                c.vars = {**scope, **dict(zip(params, args, strict=False))}
                try:
                    return body(c)
                finally:
                    c.vars = saved

            return arrow

        return make

    def _macrocall(self, node: n.MacroCall) -> Fn:
        arguments = _call_args([self.compile(a) for a in node.args],
                               {k: self.compile(v) for k, v in node.kwargs.items()})
        name, call = node.name, self.call_macro

        def run(c: Ctx) -> Any:
            args, kwargs = arguments(c)
            return call(c, name, args, kwargs, node)

        return run
