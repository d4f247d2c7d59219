"""The real GLPI 10 of the conformance suite: `scripts/real-glpi.sh` started once per session
from the tree in $GLPI_SRC, in a fresh state directory (a new database: a few seconds), on
a free port; stopped at the end. GLPI's clock is PHP's default zone, UTC."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import yaml

from connectors.glpi import GlpiClient
from hookstream.config import Settings
from hookstream.control import instances
from hookstream.devbroker import free_port_pair
from hookstream.io import create_topics

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = "glpi10"


@dataclass(frozen=True)
class RealGlpi:
    url: str  # .../apirest.php
    app_token: str
    user_token: str  # the integration's user, Super-Admin
    observer_token: str  # an Observer: reads, no writes
    human_token: str  # GLPI's `glpi` administrator: changes hookstream must see
    state: Path
    source: Path
    version: str

    def client(self, user_token: str | None = None, **kwargs: object) -> GlpiClient:
        return GlpiClient(INSTANCE, self.url, self.app_token, user_token or self.user_token,
                          timeout_s=30, backoff_s=0.05, **kwargs)  # type: ignore[arg-type]

    def start_web(self, port: int, session_lifetime: int) -> str:
        """Another PHP server on the same GLPI, with its own session lifetime."""
        script(self.source, "--port", str(port), "--state", str(self.state),
               "--session-lifetime", str(session_lifetime))
        return f"http://127.0.0.1:{port}/apirest.php"


def script(source: Path, *args: str) -> dict[str, str]:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "real-glpi.sh"), "start", str(source),
                           *args], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"real-glpi.sh failed: {done.stderr[-2000:]}")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def real_glpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGlpi]:
    source = Path(os.environ["GLPI_SRC"]).resolve()
    state = tmp_path_factory.mktemp("real-glpi")
    port = free_port_pair(1)
    env = script(source, "--port", str(port), "--state", str(state))
    try:
        yield RealGlpi(env["GLPI_URL"], env["GLPI_APP_TOKEN"], env["GLPI_USER_TOKEN"],
                       env["GLPI_OBSERVER_TOKEN"], env["GLPI_HUMAN_TOKEN"], state, source,
                       env["GLPI_VERSION"])
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "real-glpi.sh"), "stop", "--state",
                        str(state)], capture_output=True, timeout=120)


@pytest.fixture
def glpi(real_glpi: RealGlpi) -> Iterator[GlpiClient]:
    """The integration user's client; its session ends with the test."""
    with real_glpi.client() as client:
        yield client


@pytest.fixture
def published(settings: Settings, tmp_path: Path, real_glpi: RealGlpi) -> Settings:
    """Settings on the session's broker with the real GLPI published as instance glpi10."""
    create_topics(settings)
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": INSTANCE, "api_url": real_glpi.url,
                                    "app_token": real_glpi.app_token,
                                    "user_token": real_glpi.user_token,
                                    "secret": "conformance-webhook-secret-0123456789"}))
    instances.apply_instances(settings, path)
    return replace(settings, poller_timezone="UTC")


def raw(real_glpi: RealGlpi, method: str, path: str, session: str | None = None,
        headers: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
    """One request to the real API as it is, for comparing answers."""
    sent = {"App-Token": real_glpi.app_token, "Content-Type": "application/json",
            **({"Session-Token": session} if session else {}), **(headers or {})}
    return httpx.request(method, f"{real_glpi.url}/{path}", headers=sent, timeout=30,
                         **kwargs)  # type: ignore[arg-type]
