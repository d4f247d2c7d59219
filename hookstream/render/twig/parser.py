"""Twig 3's statement parser for the tags GLPI's sandbox allows: `if`/`elseif`/`else`,
`for`/`else`, `set` (and its capture form), `block`, `macro`, `apply`, `autoescape`; plus
`import _self as alias`, which GLPI's policy refuses but hookstream allows so that macros can
be called (GLPI's Twig needs `import` even for `_self.macro()`)."""

from __future__ import annotations

from collections.abc import Callable

from hookstream.render.twig import nodes as n
from hookstream.render.twig.errors import TwigSyntaxError
from hookstream.render.twig.expressions import ExpressionParser
from hookstream.render.twig.lexer import (
    BLOCK_END,
    BLOCK_START,
    EOF,
    NAME,
    OPERATOR,
    PUNCT,
    TEXT,
    VAR_END,
    VAR_START,
    Token,
    tokenize,
)
from hookstream.render.twig.sandbox import check_tag
from hookstream.render.twig.stream import TokenStream

__all__ = ["parse"]

_STRATEGIES = frozenset({"html", "html_attr", "url", "js", "css"})


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.stream = TokenStream(tokens)
        self.expr = ExpressionParser(self.stream)
        self.macros: dict[str, n.Macro] = {}
        self.blocks: set[str] = set()
        self.tags: dict[str, Callable[[Token], n.Node | None]] = {
            "if": self._if, "for": self._for, "set": self._set, "block": self._block,
            "macro": self._macro, "apply": self._apply, "autoescape": self._autoescape,
            "import": self._import,
        }

    def parse(self) -> n.Template:
        body, _ = self.subparse(())
        return n.Template(body, self.macros)

    def subparse(self, ends: tuple[str, ...]) -> tuple[list[n.Node], str]:
        """Nodes up to one of the `ends` tags (its name consumed) or the end of the text."""
        stream = self.stream
        body: list[n.Node] = []
        while True:
            token = stream.current
            if token.kind == TEXT:
                stream.next()
                body.append(n.Text(token.line, token.col, str(token.value)))
            elif token.kind == VAR_START:
                stream.next()
                expr = self.expr.parse()
                stream.expect(VAR_END)
                body.append(n.Print(token.line, token.col, expr))
            elif token.kind == BLOCK_START:
                stream.next()
                tag = stream.current
                if tag.kind != NAME:
                    raise stream.fail("a block must start with a tag name")
                if tag.value in ends:
                    stream.next()
                    return body, str(tag.value)
                handler = self.tags.get(str(tag.value))
                if handler is None:
                    if not str(tag.value).startswith("end") and tag.value not in (
                            "else", "elseif"):
                        check_tag(str(tag.value), tag)
                    if ends:
                        wanted = " or ".join(f'"{e}"' for e in ends)
                        raise stream.fail(f'unexpected "{tag.value}" tag (expecting {wanted})')
                    check_tag(str(tag.value), tag)
                    raise stream.fail(f'unknown "{tag.value}" tag')
                stream.next()
                node = handler(tag)
                if node is not None:
                    body.append(node)
            elif token.kind == EOF:
                if ends:
                    raise stream.fail(f'unexpected end of template (expecting "{ends[-1]}")')
                return body, ""
            else:
                raise stream.fail(f'unexpected {token.kind} "{token.value}"')

    def _end(self) -> None:
        self.stream.expect(BLOCK_END)

    def _if(self, tag: Token) -> n.Node:
        branches: list[tuple[n.Expr, list[n.Node]]] = []
        test = self.expr.parse()
        self._end()
        otherwise: list[n.Node] = []
        while True:
            body, end = self.subparse(("elseif", "else", "endif"))
            branches.append((test, body))
            if end == "elseif":
                test = self.expr.parse()
                self._end()
            elif end == "else":
                self._end()
                otherwise, _ = self.subparse(("endif",))
                self._end()
                break
            else:
                self._end()
                break
        return n.If(tag.line, tag.col, branches, otherwise)

    def _target(self) -> str:
        token = self.stream.current
        if token.kind == NAME or (token.kind == OPERATOR and str(token.value).isidentifier()):
            self.stream.next()
            if str(token.value).lower() in ("true", "false", "none", "null"):
                raise self.stream.fail(f'cannot assign a value to "{token.value}"', token)
            return str(token.value)
        raise self.stream.fail("only variables can be assigned to")

    def _for(self, tag: Token) -> n.Node:
        names = [self._target()]
        if self.stream.next_if(PUNCT, ","):
            names.append(self._target())
        self.stream.expect(OPERATOR, "in")
        seq = self.expr.parse()
        self._end()
        body, end = self.subparse(("else", "endfor"))
        otherwise = None
        if end == "else":
            self._end()
            otherwise, _ = self.subparse(("endfor",))
        self._end()
        key, value = (names[0], names[1]) if len(names) == 2 else (None, names[0])
        return n.For(tag.line, tag.col, key, value, seq, body, otherwise)

    def _set(self, tag: Token) -> n.Node:
        names = [self._target()]
        while self.stream.next_if(PUNCT, ","):
            names.append(self._target())
        if self.stream.next_if(OPERATOR, "="):
            values = [self.expr.parse()]
            while self.stream.next_if(PUNCT, ","):
                values.append(self.expr.parse())
            self._end()
            if len(names) != len(values):
                raise TwigSyntaxError("when using set, you must have the same number of "
                                      "variables and assignments", tag.line, tag.col)
            return n.Set(tag.line, tag.col, names, values)
        if len(names) > 1:
            raise self.stream.fail("when using set with a block, you cannot have a multi-target")
        self._end()
        body, _ = self.subparse(("endset",))
        self._end()
        return n.SetCapture(tag.line, tag.col, names[0], body)

    def _block(self, tag: Token) -> n.Node:
        name = str(self.stream.expect(NAME).value)
        if name in self.blocks:
            raise TwigSyntaxError(f'the block "{name}" has already been defined',
                                  tag.line, tag.col)
        self.blocks.add(name)
        if self.stream.next_if(BLOCK_END):
            body, _ = self.subparse(("endblock",))
            closing = self.stream.next_if(NAME)
            if closing is not None and closing.value != name:
                raise self.stream.fail(f'expected endblock for block "{name}"', closing)
        else:
            expr = self.expr.parse()
            body = [n.Print(tag.line, tag.col, expr)]
        self._end()
        return n.Block(tag.line, tag.col, name, body)

    def _macro(self, tag: Token) -> None:
        name = str(self.stream.expect(NAME).value)
        params: list[tuple[str, n.Expr]] = []
        self.stream.expect(PUNCT, "(")
        while not self.stream.test(PUNCT, ")"):
            if params:
                self.stream.expect(PUNCT, ",")
                if self.stream.test(PUNCT, ")"):
                    break
            param = self.stream.expect(NAME, None, "an argument must be a name")
            default: n.Expr = n.Const(param.line, param.col, None)
            if self.stream.next_if(OPERATOR, "="):
                default = self.expr.parse_primary()
            params.append((str(param.value), default))
        self.stream.expect(PUNCT, ")")
        self._end()
        body, _ = self.subparse(("endmacro",))
        closing = self.stream.next_if(NAME)
        if closing is not None and closing.value != name:
            raise self.stream.fail(f'expected endmacro for macro "{name}"', closing)
        self._end()
        if name in self.macros:
            raise TwigSyntaxError(f'the macro "{name}" has already been defined',
                                  tag.line, tag.col)
        self.macros[name] = n.Macro(tag.line, tag.col, name, params, body)
        return None

    def _apply(self, tag: Token) -> n.Node:
        capture = n.Name(tag.line, tag.col, "_capture_")
        filters = self.expr.filters(capture)
        self._end()
        body, _ = self.subparse(("endapply",))
        self._end()
        return n.Apply(tag.line, tag.col, filters, body)

    def _autoescape(self, tag: Token) -> n.Node:
        strategy: str | None = "html"
        if not self.stream.test(BLOCK_END):
            value = self.expr.parse()
            if isinstance(value, n.Const) and value.value is False:
                strategy = None
            elif isinstance(value, n.Const) and value.value is True:
                strategy = "html"
            elif isinstance(value, n.Const) and value.value in _STRATEGIES:
                strategy = str(value.value)
            else:
                raise TwigSyntaxError("an escaping strategy must be a string or false",
                                      value.line, value.col)
        self._end()
        body, _ = self.subparse(("endautoescape",))
        self._end()
        return n.AutoEscape(tag.line, tag.col, strategy, body)

    def _import(self, tag: Token) -> None:
        source = self.stream.expect(NAME)
        if source.value != "_self":
            raise self.stream.fail('only "_self" can be imported', source)
        self.stream.expect(NAME, "as")
        alias = self._target()
        self._end()
        self.stream.imports.add(alias)
        return None


def parse(source: str) -> n.Template:
    """Parse a template; raises `TwigSyntaxError` naming line, column and construct."""
    return _Parser(tokenize(source)).parse()

