"""Render speed: hookstream's Twig engine against the Jinja2 emulation it replaced.

    python bench/render.py [--old-ref COMMIT] [--seconds 2.0] [--rounds 5]

Three templates on the Ticket fixture: a Mattermost attachment body in the style of GLPI's
webhook documentation, GLPI's default payload (no template: the JSON encoder), and a
20-line Teams card; then the two custom bodies of the processor benchmark's workload
(bench/workload.py), the render share of bench/processor.py. Every case also renders a URL
and a header template. The old engine is read from git (`--old-ref`, the last commit that
had it) into a temporary package, so both run in one process on the same data.
Prints renders per second and the new/old ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.workload import JSON_PAYLOAD, TEXT_PAYLOAD  # noqa: E402
from hookstream.render import compile_templates, render_request  # noqa: E402

OLD_REF = "eff32ae"
OLD_MODULES = ["__init__", "budget", "glpi_json", "php_date", "template_checks", "templates",
               "twig_filters", "twig_functions", "twig_sandbox", "twig_values"]
NOW_S = 1_762_245_332.0

MATTERMOST = """{
  "text": "GLPI - {{ item.name }}",
  "attachments": [
    {
      "fallback": "{{ item.name }}",
      "color": "{% if item.priority >= 4 %}#FF0000{% else %}#00FF00{% endif %}",
      "title": "Ticket #{{ item.id }}",
      "text": "{{ item.content|striptags }}",
      "fields": [
        {"short": true, "title": "Status", "value": "{{ item.status.name }}"},
        {"short": true, "title": "Category", "value": "{{ item.category.name }}"}
      ]
    }
  ]
}"""

TEAMS = """{
  "@type": "MessageCard",
  "@context": "http://schema.org/extensions",
  "themeColor": "{% if item.urgency > 3 %}FF0000{% else %}0076D7{% endif %}",
  "summary": "{{ item.name }}",
  "sections": [{
    "activityTitle": "Ticket {{ item.id }}: {{ item.name }}",
    "activitySubtitle": "{{ item.entity.completename }}",
    "facts": [
      {"name": "Status", "value": "{{ item.status.name }}"},
      {"name": "Urgency", "value": "{{ item.urgency }}"},
      {"name": "Category", "value": "{{ item.category.name|default('none') }}"},
      {"name": "Location", "value": "{{ item.location.name }}"},
      {"name": "Team", "value": "{{ item.team|map(m => m.name)|join(', ') }}"},
      {"name": "Opened", "value": "{{ item.date_creation|date('d/m/Y H:i') }}"},
      {"name": "Event", "value": "{{ event|capitalize }}"}
    ],
    "markdown": true
  }]
}"""

CASES: list[tuple[str, str | None]] = [
    ("mattermost", MATTERMOST), ("default payload", None), ("teams card (20 lines)", TEAMS),
    ("workload JSON body", JSON_PAYLOAD), ("workload text body", TEXT_PAYLOAD),
]


def old_engine(ref: str, into: Path) -> ModuleType:
    """The Jinja2 emulation as of `ref`, importable as `hookstream_old_render`."""
    package = into / "hookstream_old_render"
    package.mkdir()
    for name in OLD_MODULES:
        source = subprocess.run(["git", "show", f"{ref}:hookstream/render/{name}.py"],
                                cwd=ROOT, check=True, capture_output=True, text=True).stdout
        (package / f"{name}.py").write_text(
            source.replace("hookstream.render.", "hookstream_old_render."))
    sys.path.insert(0, str(into))
    return importlib.import_module("hookstream_old_render.templates")


def rate(render: Callable[[], Any], seconds: float) -> float:
    render()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            render()
        count += 100
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-ref", default=OLD_REF)
    parser.add_argument("--seconds", type=float, default=2.0, help="per engine and template")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    item = json.loads((ROOT / "tests" / "fixtures" / "Ticket.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        old = old_engine(args.old_ref, Path(tmp))
        print(f"{'template':24} {'old (Jinja2) /s':>16} {'new (Twig) /s':>14} {'new/old':>8}")
        for label, payload in CASES:
            renders = []
            for compile_fn, render_fn in ((old.compile_templates, old.render_request),
                                          (compile_templates, render_request)):
                templates = compile_fn("https://h/{{ item.id }}", {"X-Event": "{{ event }}"},
                                       payload, payload is None)
                renders.append(lambda t=templates, r=render_fn: r(t, "update", item, None,
                                                                  NOW_S))
            # Old and new alternate in short windows; the best window of each counts, so
            # that other load on the machine weighs on both alike.
            rates = [0.0, 0.0]
            for _ in range(args.rounds):
                for i, render in enumerate(renders):
                    rates[i] = max(rates[i], rate(render, args.seconds / args.rounds))
            print(f"{label:24} {rates[0]:16,.0f} {rates[1]:14,.0f} {rates[1] / rates[0]:8.2f}")


if __name__ == "__main__":
    main()
