"""PHP's sprintf, for Twig's `format` filter: `%[argnum$][flags][width][.precision]spec`
with the flags `-`, `+`, space, `0` and `'c` (custom padding)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from hookstream.render.budget import LimitExceeded
from hookstream.render.twig.php import PhpError, to_float, to_int, to_str

__all__ = ["sprintf"]

_SPEC = re.compile(r"%(?:(\d+)\$)?((?:[-+ 0]|'.)*)(\d+)?(?:\.(\d+))?([bcdeEfFgGosuxX%])?", re.S)
_FLAGS = re.compile(r"[-+ 0]|'.", re.S)
_MAX_WIDTH = 10_000


def _number(spec: str, value: Any, precision: int | None, plus: bool) -> str:
    if spec in "bcdouxX":
        number = to_int(value)
        if spec == "c":
            return chr(number % 256)
        if spec == "d":
            return (f"+{number}" if plus and number >= 0 else str(number))
        if number < 0:
            number += 2**64  # unsigned view of a 64-bit integer
        return {"b": format(number, "b"), "o": format(number, "o"), "u": str(number),
                "x": format(number, "x"), "X": format(number, "X")}[spec]
    real = to_float(value)
    places = 6 if precision is None else min(precision, 53)
    if spec in "fF":
        text = f"{real:.{places}f}"
    elif spec in "eE":
        mantissa, _, exponent = f"{real:.{places}e}".partition("e")
        text = f"{mantissa}e{int(exponent):+d}"
        text = text.upper() if spec == "E" else text
    else:
        text = f"{real:.{places or 1}{'g' if spec == 'g' else 'G'}}".replace("e+0", "e+").replace(
            "e-0", "e-").replace("E+0", "E+").replace("E-0", "E-")
    return f"+{text}" if plus and real >= 0 else text


def sprintf(fmt: str, args: Sequence[Any]) -> str:
    out: list[str] = []
    position = 0
    next_arg = 0
    for match in _SPEC.finditer(fmt):
        out.append(fmt[position:match.start()])
        position = match.end()
        argnum, flag_text, width_text, precision_text, spec = match.groups()
        if match.group(0) == "%%" or spec == "%":
            out.append("%")
            continue
        if spec is None:
            raise PhpError("format: missing format specifier")
        flags = _FLAGS.findall(flag_text)
        width = int(width_text or 0)
        precision = int(precision_text) if precision_text is not None else None
        if width > _MAX_WIDTH or (precision or 0) > _MAX_WIDTH:
            raise LimitExceeded("format width too large")
        index = int(argnum) - 1 if argnum else next_arg
        if not argnum:
            next_arg += 1
        if index < 0 or index >= len(args):
            raise PhpError("format: too few arguments")
        value = args[index]
        left = "-" in flags
        pad = " "
        for flag in flags:
            if flag == "0":
                pad = "0"
            elif flag.startswith("'"):
                pad = flag[1]
        if spec == "s":
            text = to_str(value)
            if precision is not None:  # bytes too; a cut character is dropped
                text = text.encode()[:precision].decode("utf-8", "ignore")
        else:
            text = _number(spec, value, precision, "+" in flags)
        size = len(text.encode())  # PHP pads to a width in bytes, not characters
        if size < width:
            if left:
                text = text + (" " if pad == "0" else pad) * (width - size)
            elif pad == "0" and text[:1] in "+-" and spec not in "s":
                text = text[0] + "0" * (width - size) + text[1:]
            else:
                text = pad * (width - size) + text
        out.append(text)
    out.append(fmt[position:])
    return "".join(out)
