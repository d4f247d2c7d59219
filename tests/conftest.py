"""Test fixtures: a real Kafka broker for the integration tests.

The broker comes from, in order: $KAFKA_BOOTSTRAP_SERVERS; a testcontainers Kafka where a
Docker engine answers; else the local broker (`hookstream kafka start`), started once
per test session on free ports in a temporary state directory.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hookstream.config import Settings, load_settings
from hookstream.devbroker import LocalBroker, free_port_pair
from hookstream.io.kafka_link import LINK
from tests import apicurio

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # GLPI items, as GLPI sends them


def fixture_item(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration tests are marked; the real-GLPI conformance suite runs only when given a
    GLPI 10 tree (`make conformance GLPI_SRC=DIR`), else it is deselected, never passed."""
    real_glpi = [i for i in items if "real_glpi" in i.path.parts]
    for item in items:
        if "integration" in item.path.parts or item in real_glpi:
            item.add_marker(pytest.mark.integration)
        if item in real_glpi:
            item.add_marker(pytest.mark.real_glpi)
    if real_glpi and not os.environ.get("GLPI_SRC"):
        config.hook.pytest_deselected(items=real_glpi)
        items[:] = [i for i in items if i not in real_glpi]


@pytest.fixture(autouse=True)
def _fresh_kafka_link() -> None:
    """Each test starts with the process's Kafka link as a new process has it: an outage of
    an earlier test's broker is no outage of this one's."""
    LINK.forget()


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
    with started_broker(tmp_path_factory.mktemp("kafka-state")) as broker:
        yield broker.bootstrap


@contextmanager
def started_broker(state_dir: Path, heap_mb: int = 768) -> Iterator[LocalBroker]:
    """A local broker of its own on free ports (for tests that stop, restart or pause it)."""
    broker = LocalBroker(state_dir, Settings().cache_path, port=free_port_pair(), heap_mb=heap_mb)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker this test alone uses, so it may stop, restart or SIGSTOP it."""
    with started_broker(tmp_path / "own-kafka") as broker:
        yield broker


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[apicurio.RunningRegistry]:
    """A real schema registry (Apicurio, Confluent API) for the session, basic auth enforced."""
    port = free_port_pair()
    registry = apicurio.start(Settings().cache_path, tmp_path_factory.mktemp("registry"),
                              port, port + 1, "hookstream", f"pw-{uuid.uuid4().hex}")
    try:
        yield registry
    finally:
        registry.stop()


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
