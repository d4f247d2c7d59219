"""Twig's escaping strategies (`escape` filter and autoescape): html, html_attr, url, js, css."""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["escape"]

_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#039;"})
_JS_SHORT = {"\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
             "\t": "\\t"}
_ATTR_NAMED = {34: "&quot;", 38: "&amp;", 60: "&lt;", 62: "&gt;"}


def _js(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _JS_SHORT:
        return _JS_SHORT[char]
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04X}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04X}\\u{0xDC00 | (code & 0x3FF):04X}"


def _html_attr(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if (code <= 0x1F and code not in (9, 10, 13)) or 0x7F <= code <= 0x9F:
        return "&#xFFFD;"
    if code in _ATTR_NAMED:
        return _ATTR_NAMED[code]
    if code < 0x80:
        return f"&#x{code:02X};"
    return f"&#x{match.group(0).encode('utf-16-be').hex().upper()};"


def escape(text: str, strategy: str) -> str:
    if strategy == "html":
        return text.translate(_HTML)
    if strategy == "url":
        return urllib.parse.quote(text, safe="-_.~")
    if strategy == "js":
        return re.sub(r"[^a-zA-Z0-9,._]", _js, text)
    if strategy == "css":
        return re.sub(r"[^a-zA-Z0-9]", lambda m: f"\\{ord(m.group(0)):X} ", text)
    if strategy == "html_attr":
        return re.sub(r"[^a-zA-Z0-9,.\-_]", _html_attr, text)
    raise ValueError(f'unknown escaping strategy "{strategy}"')
