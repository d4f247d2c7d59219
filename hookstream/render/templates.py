"""GLPI's Twig webhook templates (URL, header values, custom body), on hookstream's own
Twig 3 engine (`hookstream.render.twig`), checked against real Twig by the differential
tests (tests/differential).

Decisions, where hookstream and GLPI differ on purpose:

- Escaping (`escaping` per webhook): "hookstream" (the default) prints values as Twig does
  with autoescape off, and JSON-escapes each `{{ }}` of a JSON body by where it lands: inside
  a JSON string its text is escaped (quotes, backslashes, control characters), in value
  position null, booleans, numbers and arrays are written as JSON. "glpi" reproduces GLPI's
  body byte for byte: every string of the data has `"` pre-escaped as `\\"`, and Twig's HTML
  autoescape applies (GLPI's bodies often arrive with `&quot;` and as invalid JSON); GLPI
  HTML-escapes URL and header values too (`&` in a URL becomes `&amp;`), and so does that
  mode. In the default mode URL and header values are never escaped (use `url_encode`).
- Whether a body is JSON is read from the template's structure (see twig.jsonshape);
  a JSON body gets `Content-Type: application/json` unless a header sets one.
- The sandbox is GLPI's allow-list, checked at compile time with line and column; method
  calls, the `constant` test and `_`-prefixed names are refused too. Macros can be called
  (`_self.m()`, `{% import _self as m %}`), where GLPI's policy refuses the implied import.
- A failing template is a `RenderError` naming line, column and construct, never a
  half-rendered or empty body (GLPI sends an empty body).
- Bounds (`RenderLimits`): wall time, output bytes, loop iterations plus calls, `range()`
  length, value sizes and macro recursion. Dates use `RenderLimits.timezone` (GLPI's
  instance time zone; UTC by default).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookstream.errors import InvalidTemplate, RenderError
from hookstream.render.budget import Budget, LimitExceeded, RenderLimits
from hookstream.render.glpi_json import default_payload
from hookstream.render.twig.engine import Compiled, compile_template
from hookstream.render.twig.errors import TwigError

__all__ = [
    "ESCAPING_MODES",
    "CompiledTemplates",
    "RenderLimits",
    "RenderedRequest",
    "compile_templates",
    "compile_texts",
    "render_request",
    "render_text",
]

ESCAPING_MODES = ("hookstream", "glpi")


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """What a webhook sends for one event: the rendered URL, headers and body."""

    url: str
    headers: dict[str, str]
    body: bytes


_DEFAULT_LIMITS = RenderLimits()


@dataclass(frozen=True, slots=True)
class CompiledTemplates:
    """A webhook's templates, compiled once per definition version; immutable, shareable."""

    url: Compiled
    headers: tuple[tuple[str, Compiled], ...]
    payload: Compiled | None  # None: GLPI's default payload
    payload_is_json: bool
    escaping: str = "hookstream"
    # Whether a header template is named Content-Type: if none is, a JSON body's
    # Content-Type is added without looking through the rendered headers.
    names_content_type: bool = False


def _compile(label: str, source: str, mode: str, errors: list[str],
             detect_json: bool = False) -> Compiled | None:
    try:
        return compile_template(source, mode, detect_json)
    except TwigError as e:
        errors.append(f"{label}: {e}")
    except RecursionError:
        errors.append(f"{label}: template nested too deeply")
    except Exception as e:  # an engine bug must not take the caller down; never a value
        errors.append(f"{label}: template could not be compiled ({type(e).__name__})")
    return None


def compile_templates(
    url: str, headers: Mapping[str, str], payload: str | None, use_default_payload: bool,
    escaping: str = "hookstream",
) -> CompiledTemplates:
    """Compile a webhook's URL, header value and payload templates.

    Raises `InvalidTemplate` listing every failing template with line and column.
    """
    if escaping not in ESCAPING_MODES:
        raise InvalidTemplate(f"unknown escaping {escaping!r}: one of {', '.join(ESCAPING_MODES)}")
    errors: list[str] = []
    mode = "glpi" if escaping == "glpi" else "text"
    url_template = _compile("url", url, mode, errors)
    header_templates = [(name, _compile(f"header {name}", value, mode, errors))
                        for name, value in headers.items()]
    body = None
    if not use_default_payload and payload and payload.strip():
        body = _compile("payload", payload, mode, errors, detect_json=True)
    if errors:
        raise InvalidTemplate("invalid template(s):\n" + "\n".join(f"  - {e}" for e in errors))
    assert url_template is not None
    return CompiledTemplates(url_template, tuple((k, v) for k, v in header_templates
                                                 if v is not None),
                             body, body is not None and body.is_json, escaping,
                             any(_is_content_type(name) for name in headers))


def compile_texts(sources: Mapping[str, str]) -> dict[str, Compiled]:
    """Compile plain-text templates by name (the ticketer's ticket name, content, ...),
    with the webhooks' sandbox; InvalidTemplate lists every failing one."""
    errors: list[str] = []
    compiled = {name: _compile(name, source, "text", errors) for name, source in sources.items()}
    if errors:
        raise InvalidTemplate("invalid template(s):\n" + "\n".join(f"  - {e}" for e in errors))
    return {name: template for name, template in compiled.items() if template is not None}


def render_text(template: Compiled, context: Mapping[str, Any], now_s: float,
                limits: RenderLimits = _DEFAULT_LIMITS) -> str:
    """Render a template of `compile_texts`; RenderError names the failure, never a part."""
    try:
        return template.render(context, Budget(limits, now_s), limits.timezone)
    except (LimitExceeded, TwigError) as e:
        raise RenderError(str(e)) from e
    except RecursionError as e:
        raise RenderError("recursion too deep") from e
    except Exception as e:  # whatever else failed is this template's render error
        raise RenderError(f"render failed ({type(e).__name__})") from e


def render_request(
    templates: CompiledTemplates,
    event: str,
    item: Mapping[str, Any],
    parent_item: Mapping[str, Any] | None,
    now_s: float,
    limits: RenderLimits = _DEFAULT_LIMITS,
    rng: random.Random | None = None,
    default_bodies: dict[str, bytes] | None = None,
) -> RenderedRequest:
    """Render URL, headers and body for one event; `now_s` is the clock for `date`.

    `rng` seeds `random()` (tests pass a seeded one). `default_bodies`, a dict shared by
    the renders of one event (same event, item and parent), keeps GLPI's default body so
    that it is encoded once per event. Raises `RenderError`, never returns a partly
    rendered request.
    """
    budget = Budget(limits, now_s)
    budget.rng = rng
    context = {"event": event, "item": item, "parent_item": parent_item}
    label = "url"
    try:
        url = templates.url.render(context, budget, limits.timezone)
        headers: dict[str, str] = {}
        for name, template in templates.headers:
            label = f"header {name}"
            value = template.render(context, budget, limits.timezone).strip()
            if "\r" in value or "\n" in value:
                raise LimitExceeded("line break in a header value")
            if value:
                headers[name] = value
        label = "payload"
        if templates.payload is None:
            found = None if default_bodies is None else default_bodies.get("default")
            body = found if found is not None else default_payload(item, event, parent_item)
            if default_bodies is not None:
                default_bodies["default"] = body
            is_json = True
        else:
            if templates.escaping == "glpi":
                context = _pre_escaped(context)
            body = templates.payload.render(context, budget, limits.timezone).encode("utf-8")
            if len(body) > limits.max_body_bytes:
                raise LimitExceeded("body larger than the size limit")
            is_json = templates.payload_is_json
    except LimitExceeded as e:
        raise RenderError(f"{label}: {e}") from e
    except TwigError as e:
        raise RenderError(f"{label}: {e}") from e
    except RecursionError as e:
        raise RenderError(f"{label}: recursion too deep") from e
    except Exception as e:  # whatever else failed is this webhook's render error
        raise RenderError(f"{label}: render failed ({type(e).__name__})") from e
    if is_json and not (templates.names_content_type and any(map(_is_content_type, headers))):
        headers["Content-Type"] = "application/json"
    return RenderedRequest(url, headers, body)


def _is_content_type(header_name: str) -> bool:
    return header_name.lower() == "content-type"


def _pre_escaped(value: Any) -> Any:
    """GLPI's Webhook::getWebhookBody: every string of the data with `"` written `\\"`."""
    if isinstance(value, str):
        return value.replace('"', '\\"')
    if isinstance(value, Mapping):
        return {k: _pre_escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pre_escaped(v) for v in value]
    return value
