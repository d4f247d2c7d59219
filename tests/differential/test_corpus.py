"""The corpus (corpus.txt) through hookstream and through real Twig with GLPI's
environment: every template must render the same, in both escaping modes, or fail in
both, unless its header names an intended difference:

- `glpi-rejects`: GLPI's sandbox refuses it (calling a macro needs the `import` tag, which
  GLPI's policy does not allow); hookstream renders it.
- `hookstream-rejects`: hookstream refuses it at compile time (method calls, the `constant`
  test, `_`-prefixed names); in GLPI's Twig these read nothing useful from JSON data.
- `random`: the output depends on random(); only success is compared.

`fixture=NAME` renders another fixture; `tz=ZONE` renders in the instance time zone ZONE
(PHP's default time zone in GLPI), else UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hookstream.errors import InvalidTemplate, RenderError
from hookstream.render import compile_templates, render_request
from tests.differential.harness import (
    NOW_S,
    Case,
    hookstream_render,
    load_corpus,
    oracle_cases,
)
from tests.differential.oracle import Oracle, Result

CORPUS = load_corpus(Path(__file__).with_name("corpus.txt"))


def test_corpus_is_large_and_names_are_unique() -> None:
    assert len(CORPUS) >= 300
    assert len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.fixture(scope="module")
def twig_results(oracle: Oracle) -> dict[str, list[Result]]:
    cases: list[dict[str, Any]] = []
    for case in CORPUS:
        cases.extend(oracle_cases(case))
    results = oracle.render(cases)
    return {case.name: results[2 * i:2 * i + 2] for i, case in enumerate(CORPUS)}


def _same(ours: Result, theirs: Result) -> bool:
    if ours[0] == "error" or theirs[0] == "error":
        return ours[0] == theirs[0]
    return ours[1] == theirs[1]


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_template_renders_as_in_twig(case: Case, twig_results: dict[str, list[Result]]) -> None:
    glpi, plain = twig_results[case.name]
    context = case.context()
    ours_glpi = hookstream_render(case.template, context, "glpi", case.timezone)
    ours_plain = hookstream_render(case.template, context, "hookstream", case.timezone)
    if "hookstream-rejects" in case.flags:
        assert ours_plain[0] == "error" and glpi[0] == "out", (ours_plain, glpi)
        return
    if "glpi-rejects" in case.flags:
        assert glpi[0] == "error" and ours_plain[0] == "out", (glpi, ours_plain)
        return
    if "random" in case.flags:
        assert ours_plain[0] == plain[0] == "out" and ours_glpi[0] == glpi[0] == "out"
        return
    assert _same(ours_glpi, glpi), f"glpi mode\n ours: {ours_glpi!r}\n twig: {glpi!r}"
    assert _same(ours_plain, plain), f"hookstream mode\n ours: {ours_plain!r}\n twig: {plain!r}"


URL_CASES = [c for c in CORPUS if c.name.startswith(("admin-url", "admin-text", "filter-0"))]


def test_urls_and_headers_render_as_in_glpi(oracle: Oracle) -> None:
    """GLPI renders URL and header templates with HTML autoescape and the data as is."""
    twig = oracle.render([{"template": c.template, "context": c.context(), "mode": "glpi_url"}
                          for c in URL_CASES])
    for case, theirs in zip(URL_CASES, twig, strict=True):
        context = case.context()
        try:
            compiled = compile_templates(case.template, {}, None, True, escaping="glpi")
            rendered = render_request(compiled, context["event"], context["item"],
                                      context["parent_item"], NOW_S)
            ours: Result = ("out", rendered.url)
        except (InvalidTemplate, RenderError) as e:
            ours = ("error", str(e))
        assert _same(ours, theirs), f"{case.name}: ours {ours!r}, twig {theirs!r}"
