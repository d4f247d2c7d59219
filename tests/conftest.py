"""Test fixtures: a real Kafka broker for the integration tests.

The broker comes from, in order: $KAFKA_BOOTSTRAP_SERVERS; a testcontainers Kafka where a
Docker engine answers; else the local broker (`hookstream kafka start`), started once
per test session on free ports in a temporary state directory.
"""

from __future__ import annotations

import json
import os
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookstream.config import Settings, load_settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # GLPI items, as GLPI sends them


def fixture_item(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def _free_port_pair() -> int:
    """Two free adjacent ports (broker, controller) below the ephemeral range, where an
    outgoing connection cannot take one of them between this check and the bind."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = random.randrange(20_000, min(low, 32_000) - 2)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from hookstream.devbroker import LocalBroker

    defaults = Settings()
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-state"),
        defaults.cache_path,
        port=_free_port_pair(),
        heap_mb=768,
    )
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings on the test broker, with topics of this test's own prefix."""
    return settings_for(kafka_bootstrap, tmp_path)


def settings_for(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings on the test broker: a topic prefix of their own, short retry tiers."""
    return load_settings(
        env={},
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=2,
        state_dir=str(tmp_path / "state"),
        retry_tiers="1s,2s,3s",
    )
