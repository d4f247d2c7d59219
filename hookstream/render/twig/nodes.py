"""The syntax tree of a Twig template: what the parser builds and the compiler reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Apply", "Arrow", "AutoEscape", "Binary", "Block", "Conditional", "Const", "Expr", "Filter",
    "For", "Function", "GetAttr", "Hash", "If", "Import", "Macro", "MacroCall", "Name", "Node",
    "Print", "Set", "SetCapture", "Test", "Text", "Unary",
]


@dataclass(slots=True)
class Node:
    line: int
    col: int


class Expr(Node):
    __slots__ = ()


@dataclass(slots=True)
class Const(Expr):
    value: Any


@dataclass(slots=True)
class Name(Expr):
    name: str


@dataclass(slots=True)
class GetAttr(Expr):
    node: Expr
    key: Expr
    array_only: bool  # `a[b]` (array access) rather than `a.b`


@dataclass(slots=True)
class Hash(Expr):
    """An array literal: `[a, b]` (keys None) or `{k: v}`."""

    items: list[tuple[Expr | None, Expr]]


@dataclass(slots=True)
class Unary(Expr):
    op: str  # "not", "-", "+"
    node: Expr


@dataclass(slots=True)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(slots=True)
class Conditional(Expr):
    test: Expr
    then: Expr
    otherwise: Expr
    coalesce: bool = False  # `a ?? b`: `a` is tested for being defined and not null


@dataclass(slots=True)
class Filter(Expr):
    node: Expr
    name: str
    args: list[Expr]
    kwargs: dict[str, Expr]


@dataclass(slots=True)
class Function(Expr):
    name: str
    args: list[Expr]
    kwargs: dict[str, Expr]


@dataclass(slots=True)
class Test(Expr):
    node: Expr
    name: str
    args: list[Expr]


@dataclass(slots=True)
class Arrow(Expr):
    params: list[str]
    body: Expr


@dataclass(slots=True)
class MacroCall(Expr):
    """`_self.name(...)`, or `alias.name(...)` after `{% import _self as alias %}`."""

    name: str
    args: list[Expr]
    kwargs: dict[str, Expr]


@dataclass(slots=True)
class Text(Node):
    data: str


@dataclass(slots=True)
class Print(Node):
    expr: Expr
    json_context: str = "text"  # "text", "string" (inside a JSON string) or "value"


@dataclass(slots=True)
class If(Node):
    branches: list[tuple[Expr, list[Node]]]
    otherwise: list[Node]


@dataclass(slots=True)
class For(Node):
    key: str | None
    value: str
    seq: Expr
    body: list[Node]
    otherwise: list[Node] | None


@dataclass(slots=True)
class Set(Node):
    names: list[str]
    values: list[Expr]


@dataclass(slots=True)
class SetCapture(Node):
    name: str
    body: list[Node]


@dataclass(slots=True)
class Block(Node):
    name: str
    body: list[Node]


@dataclass(slots=True)
class Macro(Node):
    name: str
    params: list[tuple[str, Expr]]
    body: list[Node]


@dataclass(slots=True)
class Import(Node):
    alias: str


@dataclass(slots=True)
class Apply(Node):
    """`{% apply f|g %}body{% endapply %}`: `filters` is a chain on a Name('_capture_')."""

    filters: Expr
    body: list[Node]


@dataclass(slots=True)
class AutoEscape(Node):
    strategy: str | None  # None: escaping off
    body: list[Node]


@dataclass(slots=True)
class Template:
    body: list[Node]
    macros: dict[str, Macro] = field(default_factory=dict)
