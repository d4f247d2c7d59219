"""docker-compose.yml cannot run here: check it parses and names real entry points; the
package layout the import contracts name."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from hookstream.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_use_real_entry_points() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    hookstream_services = [s for s in services.values() if s.get("image") == "hookstream:dev"]
    assert hookstream_services, "no hookstream component in docker-compose.yml"
    for service in hookstream_services:
        args = build_parser().parse_args(service["command"])  # SystemExit on an unknown command
        assert callable(args.func)
        assert service["environment"]["HOOKSTREAM_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_console_script_is_the_cli() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["hookstream"] == "hookstream.cli:main"
    assert project["requires-python"] == ">=3.11"


def test_dockerfile_installs_the_wheel_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hookstream"]' in dockerfile
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2, "a build stage and a final stage"
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "pip install -e" not in dockerfile and "--no-index --find-links /wheels" in final
    assert "USER 10001" in final and "COPY hookstream" not in final  # only the wheels


def test_every_part_of_hookstream_but_the_cli_is_kept_from_connectors_and_processors() -> None:
    """The import contract lists hookstream's parts by name: a new one must be added to it."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [c for c in contracts["contracts"]
                  if c["name"] == "Only the CLI imports connectors and processors"]
    assert contract["type"] == "forbidden"
    assert contract["forbidden_modules"] == ["connectors", "processors"]
    parts = {f"hookstream.{p.stem if p.suffix == '.py' else p.name}"
             for p in (ROOT / "hookstream").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert set(contract["source_modules"]) == parts - {"hookstream.cli"}
