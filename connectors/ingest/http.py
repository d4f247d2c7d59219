"""aiohttp's low-level server, able to read GLPI's non-standard `UPDATE` method.

A GLPI webhook may be set to the method "update", which GLPI sends as `UPDATE`.
aiohttp's C parser (llhttp) knows a fixed list of methods and answers 400 to any
other, before a handler runs; aiohttp's Python parser accepts every RFC 9110 token but
costs more (bench/ingest.py: the endpoint on it, `ingest-py`, 7 % fewer requests/s; a
bare handler 65 µs a request against 45).

So each connection starts with the C parser, and switches to the Python parser before
its first byte is parsed when its first request does not start with a method llhttp is
known to read. GLPI opens a connection per webhook (a Guzzle client per send,
QueuedWebhook::sendById), so its UPDATE is always its connection's first request. A
client that sends UPDATE later on a kept-alive connection gets 400 for it (GLPI would
resend it, on a new connection). This leans on RequestHandler's construction and
data_received (aiohttp 3.14, pinned); tests/integration/test_ingest.py posts with UPDATE,
also split mid-method, so an aiohttp upgrade that breaks it fails there.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from aiohttp import web
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

Parser = Literal["auto", "python"]  # "python": every connection (bench/ingest.py)

# Methods llhttp reads, a prefix each: a first chunk starting otherwise (UPDATE, another
# token, or too short to tell) goes to the Python parser.
C_PARSER_PREFIXES = tuple(
    m.encode() + b" " for m in ("POST", "GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
)


class _Handler(RequestHandler):
    def __init__(
        self, manager: web.Server, parser: Parser, *, loop: asyncio.AbstractEventLoop,
        **kwargs: Any
    ):
        super().__init__(manager, loop=loop, **kwargs)
        self._auto_decompress = kwargs.get("auto_decompress", True)
        self._undecided = parser == "auto"
        if parser == "python":
            self._use_python_parser()

    def _use_python_parser(self) -> None:
        self._parser = HttpRequestParserPy(
            self,
            self._loop,
            self._read_bufsize,
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
            payload_exception=RequestPayloadError,
            auto_decompress=self._auto_decompress,
            max_msg_queue_size=self._max_msg_queue_size,
        )

    def data_received(self, data: bytes) -> None:
        if self._undecided:
            self._undecided = False
            if not data.startswith(C_PARSER_PREFIXES):
                self._use_python_parser()
        super().data_received(data)


class IngestServer(web.Server):
    """A web.Server whose connections parse as `parser` says ("auto": see the module)."""

    def __init__(self, handler: Any, parser: Parser = "auto", **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._parser_choice: Parser = parser

    def __call__(self) -> RequestHandler:
        return _Handler(self, self._parser_choice, loop=self._loop, **self._kwargs)


__all__ = ["IngestServer", "Parser"]
