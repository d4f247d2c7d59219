"""`hookstream glpi provision` and `import-webhooks` need GLPI 11's Webhook itemtype: against
GLPI 10 each says so in one line and changes nothing in GLPI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hookstream.config import Settings
from tests.integration.harness import cli_env
from tests.real_glpi.conftest import INSTANCE, RealGlpi


@pytest.mark.parametrize("action", [
    ["provision", "--ingest-url", "https://hookstream.example/glpi"],
    ["import-webhooks"],
    ["import-webhooks", "--disable-in-glpi"],
])
def test_a_glpi_without_webhooks_is_said_in_one_line_and_nothing_changes(
        published: Settings, real_glpi: RealGlpi, action: list[str], tmp_path: object) -> None:
    port = real_glpi.url.split(":")[2].split("/")[0]
    web_log = real_glpi.state / f"web-{port}.log"
    logged = len(web_log.read_text().splitlines())
    done = subprocess.run([sys.executable, "-m", "hookstream.cli", "glpi", *action,
                           "--instance", INSTANCE], env=cli_env(published), capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"hookstream: GLPI {INSTANCE} has no webhooks (GLPI 11 or later): nothing was "
        "changed; poll it with `hookstream run poller`"]
    requests = web_log.read_text().splitlines()[logged:]
    assert requests and not [r for r in requests if " POST " in r or " PUT " in r
                             or " DELETE " in r]
