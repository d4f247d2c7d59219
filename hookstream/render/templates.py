"""GLPI's Twig webhook templates (URL, header values, custom body) on Jinja2's sandbox.

Decisions, where GLPI/Twig and hookstream differ or Jinja2 needed help:

- Allow-list as GLPI: tags `apply` (also Jinja's `filter`), `autoescape`, `block`, `if`,
  `for`, `macro`, `set`; the filters of `twig_filters.FILTERS`, the functions of
  `twig_functions.FUNCTIONS`. Anything else (include, import, extends, call, with, unknown
  filters/functions/tests, method calls, names or attributes starting with `_`, Jinja
  globals such as `self`, `namespace`, `cycler`, `lipsum`) is an `InvalidTemplate` listing
  every problem.
- Twig spellings: `x|json_encode`, `~`, `is defined/null/empty/iterable`, `item.a.b`,
  `item['a']`, `for k, v in hash` (key/value pairs; `for v in hash` gives values as in Twig),
  arrow functions in `filter`, `map`, `reduce`, `sort` (`v => ...`, `(a, b) => ...`; they
  see their parameters and every variable in scope, loop and macro ones included).
  Not supported: `..`, `??`, `?:`, `<=>`, two-word tests (`same as`, `divisible by`: use
  `sameas`, `divisibleby`).
- A JSON template is one whose text, past leading `{% %}` tags and comments, opens with
  `[` or a `{` that does not start a tag.
- Undefined values follow Twig's default `strict_variables=false`: a missing key or variable
  is null, `item.missing.deeper` too; using one in arithmetic is a render error.
- Attribute access reads mapping keys, sequence items and `loop.*` only; any attribute of any
  other object is a `RenderError`. Every call goes through the sandbox: only allowed functions
  and the template's own macros can be called.
- Output escaping: no HTML escaping anywhere (GLPI HTML-escapes; its JSON bodies break).
  In a JSON template each `{{ }}` is JSON escaped (strings without their quotes, null,
  true/false, numbers, arrays/hashes as compact PHP JSON); values marked safe
  (`json_encode`, `raw`, `escape`) are left alone.
  Other bodies, URLs and header values print values as Twig does (null and false as '',
  true as '1'); URL values are inserted raw (use `url_encode`). Arrays print as compact JSON
  where Twig would print "Array".
- Bounds (`RenderLimits`): wall time, output bytes, loop iterations plus calls, `range()`
  length, string/list/number growth by operators, filters, `~` and captures, and macro
  recursion depth. Every failure is a `RenderError` with a short reason, never a half body.

Modules: this one compiles and renders; `template_checks` vets and rewrites a parsed
template; `twig_sandbox` is the Jinja environment; `twig_filters`, `twig_functions` and
`twig_values` give Twig's semantics; `php_date` formats dates; `render_budget` bounds a render.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError

from hookstream.errors import InvalidTemplate, RenderError
from hookstream.render.budget import BUDGET, Budget, LimitExceeded, RenderLimits
from hookstream.render.glpi_json import default_payload
from hookstream.render.template_checks import add_guards, template_problems
from hookstream.render.twig_sandbox import Sandbox
from hookstream.render.twig_values import finalize_json, finalize_text

__all__ = [
    "CompiledTemplates",
    "RenderLimits",
    "RenderedRequest",
    "compile_templates",
    "render_request",
]


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """What a webhook sends for one event: the rendered URL, headers and body."""

    url: str
    headers: dict[str, str]
    body: bytes


_DEFAULT_LIMITS = RenderLimits()
_TEXT_ENV = Sandbox(finalize_text)
_JSON_ENV = Sandbox(finalize_json)


# jinja2.Template, or the text itself for a template that is only text (see _constant);
# Any keeps mypy --strict quiet about Jinja's loose typing.
_Template = Any


@dataclass(frozen=True, slots=True)
class CompiledTemplates:
    """A webhook's templates, compiled once per definition version; immutable, shareable."""

    url: _Template
    headers: tuple[tuple[str, _Template], ...]
    payload: _Template | None  # None: GLPI's default payload
    payload_is_json: bool


def _compile(env: Sandbox, label: str, source: str) -> tuple[_Template | None, list[str]]:
    try:
        tree = env.parse(source)
        problems = template_problems(tree)
        if problems:
            return None, [f"{label}: line {line}: {message}" for line, message in problems]
        add_guards(tree)
        constant = _constant(tree)
        if constant is not None:
            return constant, []
        code = env.compile(tree, name=label, filename=f"<{label}>")
        return env.template_class.from_code(env, code, env.make_globals(None), None), []
    except TemplateSyntaxError as e:
        return None, [f"{label}: line {e.lineno}: {e.message}"]


def compile_templates(
    url: str, headers: Mapping[str, str], payload: str | None, use_default_payload: bool
) -> CompiledTemplates:
    """Compile a webhook's URL, header value and payload templates.

    Raises `InvalidTemplate` listing every failing template with line numbers.
    """
    errors: list[str] = []
    url_template, found = _compile(_TEXT_ENV, "url", url)
    errors += found
    header_templates: list[tuple[str, _Template]] = []
    for name, value in headers.items():
        template, found = _compile(_TEXT_ENV, f"header {name}", value)
        errors += found
        header_templates.append((name, template))
    body_template = None
    is_json = False
    if not use_default_payload and payload and payload.strip():
        is_json = _is_json_template(payload)
        body_template, found = _compile(_JSON_ENV if is_json else _TEXT_ENV, "payload", payload)
        errors += found
    if errors:
        raise InvalidTemplate("invalid template(s):\n" + "\n".join(f"  - {e}" for e in errors))
    return CompiledTemplates(url_template, tuple(header_templates), body_template, is_json)


def _constant(tree: nodes.Template) -> str | None:
    """The output of a template that is only text (no `{{ }}`, `{% %}`), else None.

    Such a template is stored as its text and never run: a Jinja render costs ~10 µs even
    for a constant. The text is the parser's, so Jinja's newline normalisation and trailing
    newline removal are kept; template text is printed as is (no finalize, no escaping).
    """
    parts = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if not isinstance(child, nodes.TemplateData):
                return None
            parts.append(child.data)
    return "".join(parts)


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
    token = BUDGET.set(budget)
    context = {"event": event, "item": item, "parent_item": parent_item}
    label = "url"
    try:
        url = _render(templates.url, context, budget)
        headers: dict[str, str] = {}
        for name, template in templates.headers:
            label = f"header {name}"
            value = _render(template, context, budget).strip()
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
            body = _render(templates.payload, context, budget).encode("utf-8")
            if len(body) > limits.max_body_bytes:
                raise LimitExceeded("body larger than the size limit")
            is_json = _parses_as_json(body)
    except LimitExceeded as e:
        raise RenderError(f"{label}: {e}") from e
    except Exception as e:  # a template's failure, whatever it is, is this webhook's problem
        raise RenderError(f"{label}{_where(e, label)}: {_reason(e)}") from e
    finally:
        BUDGET.reset(token)
    if is_json and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return RenderedRequest(url, headers, body)


_LEADING_TAGS = re.compile(r"\s*(?:\{%.*?%\}|\{#.*?#\}|\s)*", re.S)


def _is_json_template(source: str) -> bool:
    """A body whose text, past leading `{% %}` tags and comments, opens `{` or `[` is JSON."""
    text = source[_LEADING_TAGS.match(source).end():]  # type: ignore[union-attr]
    return text[:1] == "[" or (text[:1] == "{" and text[1:2] not in ("{", "%", "#"))


def _render(template: _Template, context: dict[str, Any], budget: Budget) -> str:
    if type(template) is str:  # a constant: the checks a one-chunk render would make
        if len(template) > budget.limits.max_body_bytes:
            raise LimitExceeded("output larger than the body size limit")
        if template and time.monotonic() > budget.deadline:
            raise LimitExceeded("render time limit exceeded")
        return template
    parts: list[str] = []
    size = 0
    for chunk in _generate(template, context):
        size += len(chunk)
        if size > budget.limits.max_body_bytes:
            raise LimitExceeded("output larger than the body size limit")
        if time.monotonic() > budget.deadline:
            raise LimitExceeded("render time limit exceeded")
        parts.append(chunk)
    return "".join(parts)


def _generate(template: _Template, context: dict[str, Any]) -> Any:
    """`template.generate(context)` without its per-call `dict(globals, **context)`.

    A template's globals are a ChainMap of the sandbox's (fixed once built) under an
    empty layer of its own: flattened once per environment here, not walked per render.
    As in Jinja, an exception is turned into one with the template's line numbers.
    """
    env = template.environment
    flat = _FLAT_GLOBALS.get(env)
    if flat is None:
        flat = _FLAT_GLOBALS[env] = dict(template.globals)
    ctx = env.context_class(env, {**flat, **context}, template.name, template.blocks)
    try:
        yield from template.root_render_func(ctx)
    except Exception:
        yield env.handle_exception()


_FLAT_GLOBALS: dict[Sandbox, dict[str, Any]] = {}


def _parses_as_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _where(error: BaseException, label: str) -> str:
    # Jinja rewrites tracebacks so template frames carry the template's own line numbers.
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == f"<{label}>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line else ""


def _reason(error: BaseException) -> str:
    # Only messages we wrote ourselves are shown: Python's may quote values (secrets).
    if isinstance(error, SecurityError):
        return f"not allowed: {error}"
    if isinstance(error, RecursionError):
        return "recursion too deep"
    if isinstance(error, ZeroDivisionError):
        return "division by zero"
    return type(error).__name__
