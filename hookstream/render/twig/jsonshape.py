"""Is a body template JSON, and where does each `{{ }}` land in it?

Decided from the template's structure, not its first character: the text of the body, in
source order with tags skipped and each `{{ }}` taken as a value, must read as JSON tokens
(strings, numbers, true/false/null, brackets, commas, colons) with balanced brackets and
open with `{` or `[`. So `[GLPI] Ticket {{ item.id }}` is text, and a loop that writes
`{...},` items is still JSON. Each print is marked "string" (inside a JSON string) or
"value" (in value position); macro and `{% set %}` capture bodies are read on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hookstream.render.twig import nodes as n

__all__ = ["mark_json"]

_WORD = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null")


class _Scanner:
    def __init__(self) -> None:
        self.in_string = False
        self.escaped = False
        self.depth: list[str] = []
        self.word = ""
        self.ok = True
        self.started = False
        self.opened = False

    def text(self, data: str) -> None:
        for char in data:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif char == "\\":
                    self.escaped = True
                elif char == '"':
                    self.in_string = False
                continue
            if char in '{}[],:" \t\r\n':
                self._end_word()
            if char in " \t\r\n":
                continue
            if not self.started:
                self.started = True
                self.opened = char in "{["
            if char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth.append("}" if char == "{" else "]")
            elif char in "}]":
                if not self.depth or self.depth.pop() != char:
                    self.ok = False
            elif char not in ",:":
                self.word += char

    def value(self) -> str:
        if self.in_string:
            return "string"
        self._end_word()
        if not self.started:
            self.started, self.opened = True, False
        return "value"

    def _end_word(self) -> None:
        if self.word and not _WORD.fullmatch(self.word):
            self.ok = False
        self.word = ""

    def is_json(self) -> bool:
        self._end_word()
        return self.ok and self.opened and not self.in_string and not self.depth


def _flow(body: list[n.Node], separate: list[list[n.Node]]) -> Iterator[n.Node]:
    """Text and print nodes in source order; capture bodies are set aside in `separate`."""
    for node in body:
        if isinstance(node, (n.Text, n.Print)):
            yield node
        elif isinstance(node, n.If):
            for _, branch in node.branches:
                yield from _flow(branch, separate)
            yield from _flow(node.otherwise, separate)
        elif isinstance(node, n.For):
            yield from _flow(node.body, separate)
            yield from _flow(node.otherwise or [], separate)
        elif isinstance(node, (n.Block, n.Apply, n.AutoEscape)):
            yield from _flow(node.body, separate)
        elif isinstance(node, n.SetCapture):
            separate.append(node.body)


def _scan(body: list[n.Node], separate: list[list[n.Node]]) -> tuple[bool, list[n.Print],
                                                                     list[str]]:
    scanner = _Scanner()
    prints: list[n.Print] = []
    contexts: list[str] = []
    for node in _flow(body, separate):
        if isinstance(node, n.Text):
            scanner.text(node.data)
        else:
            prints.append(node)  # type: ignore[arg-type]
            contexts.append(scanner.value())
    return scanner.is_json(), prints, contexts


def mark_json(template: n.Template) -> bool:
    """True when the body is JSON; then every print gets its JSON context."""
    separate: list[list[n.Node]] = []
    is_json, prints, contexts = _scan(template.body, separate)
    if not is_json:
        return False
    for node, context in zip(prints, contexts, strict=True):
        node.json_context = context
    pending = separate + [m.body for m in template.macros.values()]
    while pending:
        _, prints, contexts = _scan(pending.pop(), pending)
        for node, context in zip(prints, contexts, strict=True):
            node.json_context = context
    return True
