"""GLPI's Twig templates (URL, headers, body) and PHP's json_encode and date, in a sandbox."""

from __future__ import annotations

from hookstream.render.budget import RenderLimits
from hookstream.render.glpi_json import default_payload, php_float, php_json_encode
from hookstream.render.templates import (
    ESCAPING_MODES,
    CompiledTemplates,
    RenderedRequest,
    compile_templates,
    compile_texts,
    render_request,
    render_text,
)

__all__ = [
    "ESCAPING_MODES",
    "CompiledTemplates",
    "RenderLimits",
    "RenderedRequest",
    "compile_templates",
    "compile_texts",
    "default_payload",
    "php_float",
    "php_json_encode",
    "render_request",
    "render_text",
]
