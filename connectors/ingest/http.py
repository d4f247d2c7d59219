"""aiohttp's low-level server, able to read GLPI's non-standard `UPDATE` method.

A GLPI webhook may be set to the method "update", which GLPI sends as `UPDATE`.
aiohttp's C parser (llhttp) knows a fixed list of methods and answers 400 to any
other, before a handler runs; aiohttp's Python parser accepts every RFC 9110 token.
So each connection of the ingest server gets the Python parser. The cost is measured
by bench/ingest.py (`--parser c` runs the C parser, without UPDATE). This leans on
RequestHandler's construction (aiohttp 3.14, pinned); tests/integration/test_ingest.py
posts with UPDATE, so an aiohttp upgrade that breaks it fails there.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler, RequestPayloadError


class _AnyMethodHandler(RequestHandler):
    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, **kwargs: Any):
        super().__init__(manager, loop=loop, **kwargs)
        self._parser = HttpRequestParserPy(
            self,
            loop,
            self._read_bufsize,
            max_line_size=self.max_line_size,
            max_field_size=self.max_field_size,
            max_headers=self.max_headers,
            payload_exception=RequestPayloadError,
            auto_decompress=kwargs.get("auto_decompress", True),
            max_msg_queue_size=self._max_msg_queue_size,
        )


class AnyMethodServer(web.Server):
    """A web.Server whose connections parse with aiohttp's Python parser."""

    def __call__(self) -> RequestHandler:
        return _AnyMethodHandler(self, loop=self._loop, **self._kwargs)


__all__ = ["AnyMethodServer"]
