"""A real Apache Kafka broker on loopback for development and tests, without Docker."""

from __future__ import annotations

from hookstream.devbroker.broker import LocalBroker, LocalCluster, Secured, free_port_pair

__all__ = [
    "LocalBroker",
    "LocalCluster",
    "Secured",
    "free_port_pair",
]
