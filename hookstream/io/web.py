"""What the HTTP endpoints (`run ingest`, `run alerts`) share: reading a bounded body."""

from __future__ import annotations

from aiohttp import web


async def read_at_most(request: web.BaseRequest, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (the rest is not read)."""
    if request.content_length is not None:
        if request.content_length > limit:
            return None
        return await request.content.read()  # the parser ends the payload at that length
    body = bytearray()
    async for chunk in request.content.iter_chunked(65_536):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
