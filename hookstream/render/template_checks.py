"""Compile-time work on a parsed template: the allow-list check, then the rewrite that
routes loops and `~` through the sandbox's runtime guards."""

from __future__ import annotations

from collections.abc import Iterator

from jinja2 import nodes

from hookstream.render.twig_filters import ARROW_FILTERS, FILTERS
from hookstream.render.twig_functions import FUNCTIONS
from hookstream.render.twig_sandbox import is_arrow
from hookstream.render.twig_values import TESTS

__all__ = ["add_guards", "template_problems"]


_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.For, nodes.Macro,
    nodes.Assign, nodes.AssignBlock, nodes.Block, nodes.FilterBlock,
    nodes.ScopedEvalContextModifier, nodes.EvalContextModifier, nodes.Scope, nodes.Keyword,
    nodes.Name, nodes.Const, nodes.Tuple, nodes.List, nodes.Dict, nodes.Pair, nodes.CondExpr,
    nodes.BinExpr, nodes.UnaryExpr, nodes.Compare, nodes.Operand, nodes.Concat,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.Call,
    nodes.InternalName,  # only arrow functions make them
)
# Jinja's own globals and special names: reaching them is a sandbox probe, not a typo.
_RESERVED_NAMES = frozenset({"self", "namespace", "cycler", "joiner", "lipsum", "dict",
                             "caller", "environment", "context"})
_TAG_NAMES: dict[type[nodes.Node], str] = {
    nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from",
    nodes.Extends: "extends", nodes.CallBlock: "call", nodes.With: "with",
}


def template_problems(tree: nodes.Template) -> list[tuple[int, str]]:
    """Everything outside the allow-list, with line numbers."""
    macros = {m.name for m in tree.find_all(nodes.Macro)}
    called: set[int] = set()
    arrow_args: set[int] = set()
    found: list[tuple[int, str]] = []
    for node in _walk(tree):
        line = node.lineno
        if not isinstance(node, _ALLOWED_NODES):
            tag = _TAG_NAMES.get(type(node))
            found.append((line, f"tag '{tag}' is not allowed" if tag else
                          f"{type(node).__name__} is not allowed"))
        elif isinstance(node, nodes.For) and node.recursive:
            found.append((line, "recursive loops are not allowed"))
        elif is_arrow(node):
            if id(node) not in arrow_args:
                found.append((line, "arrow functions only go to filter, map, reduce and sort"))
        elif isinstance(node, nodes.Call):
            callee = node.node
            if not isinstance(callee, nodes.Name):
                found.append((line, "method calls are not allowed"))
            elif callee.name not in FUNCTIONS and callee.name not in macros:
                found.append((line, f"unknown function '{callee.name}'"))
            called.add(id(callee))
        elif isinstance(node, (nodes.Filter, nodes.Test)):
            kind, known = ("filter", FILTERS) if isinstance(node, nodes.Filter) else (
                "test", TESTS)
            if node.name not in known:
                found.append((line, f"unknown {kind} '{node.name}'"))
            elif kind == "filter" and node.name in ARROW_FILTERS:
                arrow_args.update(id(a) for a in node.args)
        elif isinstance(node, nodes.Name):
            if node.name.startswith("_") or node.name in _RESERVED_NAMES:
                found.append((line, f"name '{node.name}' is not allowed"))
            elif node.name in FUNCTIONS and id(node) not in called:
                found.append((line, f"function '{node.name}' can only be called"))
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", "")
            if isinstance(key, str) and key.startswith("_"):
                found.append((line, f"attribute '{key}' is not allowed"))
    return found


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    # Parents before children: a Call or Filter is seen before its arguments.
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def add_guards(tree: nodes.Template) -> None:
    """Route every `for` iterable through the loop guard and every `~` through Twig's
    concatenation; as filters that need a render budget, neither is folded at compile time."""
    for loop in tree.find_all(nodes.For):
        pairs = isinstance(loop.target, nodes.Tuple) and len(loop.target.items) == 2
        loop.iter = nodes.Filter(loop.iter, "_loop_guard", [nodes.Const(pairs)], [], None, None,
                                 lineno=loop.lineno)
    for concat in tree.find_all(nodes.Concat):
        operands = nodes.Tuple(concat.nodes, "load", lineno=concat.lineno)
        concat.nodes = [nodes.Filter(operands, "_tilde", [], [], None, None, lineno=concat.lineno)]
