"""What the delivery loop needs of Kafka and HTTP: narrow protocols (STYLE.md 10), and
the two types every part of it shares (`TP`, `Job`).

The service is given objects with these methods; in production the confluent-kafka
Consumer and Producer and the aiohttp `Sender`, in unit tests small in-memory fakes and
a recording sender, so the loop's decisions are tested without a broker or a network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from confluent_kafka import TopicPartition

from connectors.delivery.http import HttpResult, Target
from hookstream.policy import Network
from hookstream.records import DeliveryRequest


class TP(NamedTuple):
    """A partition of a topic (a plain (topic, partition) pair compares equal)."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Job:
    """A delivery request read from `tp` at `offset` while this process owned the
    partition as `generation` (checkpoint)."""

    tp: TP
    offset: int
    request: DeliveryRequest
    generation: int
    via: str | None = None  # a retry kept in place (ordering): the tier it counts as read from

    @property
    def topic(self) -> str:
        """The topic the record counts as read from (its tier, for a retry in place)."""
        return self.via or self.tp.topic



class Message(Protocol):
    """A record as read from Kafka (confluent_kafka.Message's accessors)."""

    def error(self) -> Any: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...
    def timestamp(self) -> tuple[int, int]: ...


Rebalance = Callable[[Any, list[TopicPartition]], None]


class RecordSource(Protocol):
    """The group consumer of the deliveries topic and the retry tiers."""

    def subscribe(self, topics: list[str], on_assign: Rebalance = ..., on_revoke: Rebalance = ...,
                  on_lost: Rebalance = ...) -> None: ...
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def store_offsets(self, message: Any = None, offsets: list[TopicPartition] | None = None
                      ) -> None: ...
    def commit(self, message: Any = None, offsets: Any = None, asynchronous: bool = True
               ) -> Any: ...
    def close(self) -> None: ...


class RecordSink(Protocol):
    """The producer of attempt, retry and DLQ records."""

    def produce(self, topic: str, value: Any = None, key: Any = None, partition: int = -1,
                on_delivery: Callable[[Any, Any], None] | None = None, timestamp: int = 0,
                headers: Any = None) -> None: ...
    def poll(self, timeout: float = -1) -> int: ...
    def flush(self, timeout: float = -1) -> int: ...


class HttpSender(Protocol):
    """One HTTP attempt (connectors.delivery.http.sender.Sender)."""

    async def send(self, request: DeliveryRequest, target: Target,
                   global_allow: tuple[Network, ...] = ()) -> HttpResult: ...


class Tables(Protocol):
    """The followed webhooks table (hookstream.io.TableFollower)."""

    def catch_up(self, timeout_s: float = 60.0) -> None: ...
    def poll(self, timeout_s: float = 0.0, max_records: int = 500) -> int: ...
    def close(self) -> None: ...


__all__ = ["TP", "HttpSender", "Job", "Message", "RecordSink", "RecordSource", "Tables"]
