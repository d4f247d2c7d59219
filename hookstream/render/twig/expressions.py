"""Twig 3's expression parser: precedence climbing over Twig's operator table, postfix
`.`/`[]`/`|filter`, literals, string interpolation, arrow functions and tests.

Precedences are Twig's (`CoreExtension::getOperators`); `is`/`is not` parse a test, `|`
binds to its primary (so `-5|abs` is `-(5|abs)`), and a unary operator on the left of `**`
is applied to the power, as PHP evaluates Twig's compiled `(-2 ** 2)`.
"""

from __future__ import annotations

from hookstream.render.twig import nodes as n
from hookstream.render.twig.lexer import (
    ARROW,
    INTERP_END,
    INTERP_START,
    NAME,
    NUMBER,
    OPERATOR,
    PUNCT,
    STRING,
    Token,
)
from hookstream.render.twig.sandbox import (
    check_attribute,
    check_filter,
    check_function,
    check_name,
    check_test,
)
from hookstream.render.twig.stream import TokenStream

__all__ = ["ExpressionParser"]

_UNARY = {"not": 50, "-": 500, "+": 500}
_BINARY: dict[str, tuple[int, bool]] = {  # precedence, right-associative
    "or": (10, False), "and": (15, False), "b-or": (16, False), "b-xor": (17, False),
    "b-and": (18, False), "==": (20, False), "!=": (20, False), "<=>": (20, False),
    "<": (20, False), ">": (20, False), ">=": (20, False), "<=": (20, False),
    "not in": (20, False), "in": (20, False), "matches": (20, False),
    "starts with": (20, False), "ends with": (20, False), "has some": (20, False),
    "has every": (20, False), "..": (25, False), "+": (30, False), "-": (30, False),
    "~": (40, False), "*": (60, False), "/": (60, False), "//": (60, False), "%": (60, False),
    "is": (100, False), "is not": (100, False), "**": (200, True), "??": (300, True),
}
_TESTS_WITH_ARGUMENT = {"same as", "divisible by"}
_KNOWN_TESTS = {"even", "odd", "defined", "same as", "none", "null", "divisible by", "empty",
                "iterable", "constant"}


class ExpressionParser:
    def __init__(self, stream: TokenStream) -> None:
        self.stream = stream

    def parse(self, precedence: int = 0, allow_arrow: bool = False) -> n.Expr:
        if allow_arrow and (arrow := self._arrow()) is not None:
            return arrow
        expr = self._primary()
        token = self.stream.current
        while token.kind == OPERATOR and token.value in _BINARY and (
                _BINARY[str(token.value)][0] >= precedence):
            op = str(token.value)
            level, right_assoc = _BINARY[op]
            self.stream.next()
            if op in ("is", "is not"):
                test = self._test(expr)
                expr = n.Unary(token.line, token.col, "not", test) if op == "is not" else test
            else:
                right = self.parse(level if right_assoc else level + 1, allow_arrow=True)
                expr = self._binary(op, expr, right, token)
            token = self.stream.current
        if precedence == 0:
            return self._conditional(expr)
        return expr

    def _binary(self, op: str, left: n.Expr, right: n.Expr, token: Token) -> n.Expr:
        if op == "??":
            _check_definable(left, token, self.stream)  # Twig tests `left is defined`
            return n.Conditional(token.line, token.col, left, left, right, coalesce=True)
        if op == "**" and isinstance(left, n.Unary):
            # Twig compiles `-a ** b` to PHP's `(-a ** b)`, where ** binds tighter.
            return n.Unary(left.line, left.col, left.op,
                           self._binary(op, left.node, right, token))
        return n.Binary(token.line, token.col, op, left, right)

    def _arrow(self) -> n.Expr | None:
        stream = self.stream
        start = stream.current
        if start.kind == NAME and stream.look().kind == ARROW:
            stream.next()
            stream.next()
            return n.Arrow(start.line, start.col, [str(start.value)], self.parse())
        if not stream.test(PUNCT, "("):
            return None
        i = 1
        while True:
            i += 1
            if not (stream.look(i).kind == PUNCT and stream.look(i).value == ","):
                break
            i += 1
        if not (stream.look(i).kind == PUNCT and stream.look(i).value == ")"):
            return None
        if stream.look(i + 1).kind != ARROW:
            return None
        stream.next()
        params = [str(stream.expect(NAME).value)]
        while stream.next_if(PUNCT, ","):
            params.append(str(stream.expect(NAME).value))
        stream.expect(PUNCT, ")")
        stream.expect(ARROW)
        return n.Arrow(start.line, start.col, params, self.parse())

    def _primary(self) -> n.Expr:
        token = self.stream.current
        if token.kind == OPERATOR and token.value in _UNARY:
            self.stream.next()
            operand = self.parse(_UNARY[str(token.value)])
            return self._postfix(n.Unary(token.line, token.col, str(token.value), operand))
        if token.kind == PUNCT and token.value == "(":
            self.stream.next()
            expr = self.parse()
            self.stream.expect(PUNCT, ")", "an opened parenthesis is not properly closed")
            return self._postfix(expr)
        return self.parse_primary()

    def _conditional(self, expr: n.Expr) -> n.Expr:
        stream = self.stream
        while token := stream.next_if(PUNCT, "?"):
            if not stream.next_if(PUNCT, ":"):
                then = self.parse()
                if stream.next_if(PUNCT, ":"):
                    otherwise = self.parse()
                else:
                    otherwise = n.Const(token.line, token.col, "")
            else:
                then, otherwise = expr, self.parse()
            expr = n.Conditional(token.line, token.col, expr, then, otherwise)
        return expr

    def parse_primary(self) -> n.Expr:
        stream = self.stream
        token = stream.current
        node: n.Expr
        if token.kind == NAME:
            stream.next()
            name = str(token.value)
            constant = {"true": True, "false": False, "none": None, "null": None}
            if name.lower() in constant and name in (name.lower(), name.upper()):
                node = n.Const(token.line, token.col, constant[name.lower()])
            elif stream.test(PUNCT, "(") and name == "attribute":
                args, _ = self.arguments()  # Twig's attribute(a, b) is a.b, no function
                if len(args) != 2:
                    raise stream.fail('"attribute" takes two arguments here', token)
                node = n.GetAttr(token.line, token.col, args[0], args[1], False)
            elif stream.test(PUNCT, "("):
                check_function(name, token)
                args, kwargs = self.arguments(named=True)
                node = n.Function(token.line, token.col, name, args, kwargs)
            else:
                check_name(name, token)
                node = n.Name(token.line, token.col, name)
        elif token.kind == NUMBER:
            stream.next()
            node = n.Const(token.line, token.col, token.value)
        elif token.kind in (STRING, INTERP_START):
            node = self._string()
        elif token.kind == OPERATOR and str(token.value).replace(" ", "").isalpha():
            stream.next()  # a word operator in this position is a variable name (`in`)
            check_name(str(token.value), token)
            node = n.Name(token.line, token.col, str(token.value))
        elif token.kind == OPERATOR and token.value in ("-", "+"):
            stream.next()
            node = n.Unary(token.line, token.col, str(token.value), self.parse_primary())
        elif token.kind == PUNCT and token.value == "[":
            node = self._array()
        elif token.kind == PUNCT and token.value == "{":
            node = self._hash()
        else:
            raise stream.fail(f'unexpected {token.kind} "{token.value}"')
        return self._postfix(node)

    def _string(self) -> n.Expr:
        stream = self.stream
        parts: list[n.Expr] = []
        can_be_string = True
        while True:
            token = stream.current
            if can_be_string and token.kind == STRING:
                stream.next()
                parts.append(n.Const(token.line, token.col, token.value))
                can_be_string = False
            elif stream.next_if(INTERP_START):
                parts.append(self.parse())
                stream.expect(INTERP_END)
                can_be_string = True
            else:
                break
        expr = parts[0]
        for part in parts[1:]:
            expr = n.Binary(part.line, part.col, "~", expr, part)
        return expr

    def _array(self) -> n.Expr:
        start = self.stream.expect(PUNCT, "[")
        items: list[tuple[n.Expr | None, n.Expr]] = []
        while not self.stream.test(PUNCT, "]"):
            if items:
                self.stream.expect(PUNCT, ",", "an array element must be followed by a comma")
                if self.stream.test(PUNCT, "]"):
                    break
            items.append((None, self.parse()))
        self.stream.expect(PUNCT, "]", "an opened array is not properly closed")
        return n.Hash(start.line, start.col, items)

    def _hash(self) -> n.Expr:
        stream = self.stream
        start = stream.expect(PUNCT, "{")
        items: list[tuple[n.Expr | None, n.Expr]] = []
        while not stream.test(PUNCT, "}"):
            if items:
                stream.expect(PUNCT, ",", "a hash value must be followed by a comma")
                if stream.test(PUNCT, "}"):
                    break
            token = stream.current
            key: n.Expr
            if token.kind == NAME:
                stream.next()
                key = n.Const(token.line, token.col, token.value)
                if stream.test(PUNCT, ",") or stream.test(PUNCT, "}"):  # {a} is {a: a}
                    check_name(str(token.value), token)
                    items.append((key, n.Name(token.line, token.col, str(token.value))))
                    continue
            elif token.kind in (STRING, NUMBER):
                stream.next()
                key = n.Const(token.line, token.col, token.value)
            elif stream.test(PUNCT, "("):
                key = self.parse()
            else:
                raise stream.fail("a hash key must be a quoted string, a number, a name, or an "
                                  "expression enclosed in parentheses")
            stream.expect(PUNCT, ":", "a hash key must be followed by a colon (:)")
            items.append((key, self.parse()))
        stream.expect(PUNCT, "}", "an opened hash is not properly closed")
        return n.Hash(start.line, start.col, items)

    def _postfix(self, node: n.Expr) -> n.Expr:
        while True:
            token = self.stream.current
            if token.kind != PUNCT:
                return node
            if token.value == ".":
                node = self._dot(node)
            elif token.value == "[":
                node = self._subscript(node)
            elif token.value == "|":
                self.stream.next()
                node = self.filters(node)
            else:
                return node

    def _dot(self, node: n.Expr) -> n.Expr:
        stream = self.stream
        stream.next()
        token = stream.next()
        if token.kind not in (NAME, NUMBER) and not (
                token.kind == OPERATOR and str(token.value).isidentifier()):
            raise stream.fail(f'expected name or number, got "{token.value}"', token)
        if stream.test(PUNCT, "("):
            if isinstance(node, n.Name) and (node.name == "_self" or node.name in stream.imports):
                args, kwargs = self.arguments(named=True)
                return n.MacroCall(token.line, token.col, str(token.value), args, kwargs)
            raise stream.fail("method calls are not allowed", token)
        check_attribute(token.value, token)
        return n.GetAttr(token.line, token.col, node, n.Const(token.line, token.col, token.value),
                         False)

    def _subscript(self, node: n.Expr) -> n.Expr:
        stream = self.stream
        token = stream.next()
        slice_ = False
        start: n.Expr
        if stream.test(PUNCT, ":"):
            slice_, start = True, n.Const(token.line, token.col, 0)
        else:
            start = self.parse()
        if stream.next_if(PUNCT, ":"):
            slice_ = True
        if slice_:
            length: n.Expr = (n.Const(token.line, token.col, None) if stream.test(PUNCT, "]")
                              else self.parse())
            stream.expect(PUNCT, "]")
            return n.Filter(token.line, token.col, node, "slice", [start, length], {})
        stream.expect(PUNCT, "]")
        if isinstance(start, n.Const):
            check_attribute(start.value, token)
        return n.GetAttr(token.line, token.col, node, start, True)

    def filters(self, node: n.Expr) -> n.Expr:
        """A chain `name(args)|name...` applied to `node` (the `|` already consumed)."""
        while True:
            token = self.stream.expect(NAME)
            name = str(token.value)
            check_filter(name, token)
            args: list[n.Expr] = []
            kwargs: dict[str, n.Expr] = {}
            if self.stream.test(PUNCT, "("):
                args, kwargs = self.arguments(named=True, arrows=True)
            node = n.Filter(token.line, token.col, node, name, args, kwargs)
            if not self.stream.next_if(PUNCT, "|"):
                return node

    def arguments(self, named: bool = False, arrows: bool = False,
                  ) -> tuple[list[n.Expr], dict[str, n.Expr]]:
        stream = self.stream
        args: list[n.Expr] = []
        kwargs: dict[str, n.Expr] = {}
        stream.expect(PUNCT, "(")
        while not stream.test(PUNCT, ")"):
            if args or kwargs:
                stream.expect(PUNCT, ",", "arguments must be separated by a comma")
                if stream.test(PUNCT, ")"):
                    break
            value = self.parse(0, arrows)
            if named and (equals := stream.next_if(OPERATOR, "=")):
                if not isinstance(value, n.Name):
                    raise stream.fail("a parameter name must be a name", equals)
                kwargs[value.name] = self.parse(0, arrows)
            elif kwargs:
                raise stream.fail("positional arguments cannot be used after named arguments")
            else:
                args.append(value)
        stream.expect(PUNCT, ")", "a list of arguments must be closed by a parenthesis")
        return args, kwargs

    def _test(self, node: n.Expr) -> n.Expr:
        stream = self.stream
        token = stream.expect(NAME)
        name = str(token.value)
        if name not in _KNOWN_TESTS and stream.test(NAME):
            two_words = f"{name} {stream.current.value}"
            if two_words in _KNOWN_TESTS:
                stream.next()
                name = two_words
        if name not in _KNOWN_TESTS:
            raise stream.fail(f'unknown "{name}" test', token)
        check_test(name, token)
        if name == "defined":
            _check_definable(node, token, stream)
        args: list[n.Expr] = []
        if stream.test(PUNCT, "("):
            args, _ = self.arguments(named=True)
        elif name in _TESTS_WITH_ARGUMENT:
            args = [self.parse_primary()]
        return n.Test(token.line, token.col, node, name, args)


def _check_definable(node: n.Expr, token: Token, stream: TokenStream) -> None:
    if not isinstance(node, (n.Name, n.GetAttr, n.Const, n.Hash, n.MacroCall)):
        raise stream.fail('the "defined" test only works with simple variables', token)
