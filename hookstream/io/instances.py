"""The GLPI instances a running endpoint serves, followed from the compacted topic.

Read whole before readiness, then followed by a daemon thread, so `hookstream instances
apply` reaches a running endpoint without a restart. Each record is turned once, here, into
the endpoint's view of it (`run ingest`: its webhook secret; `run alerts`: its routes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from confluent_kafka import Message

from hookstream.config import Settings
from hookstream.errors import HookstreamError
from hookstream.io.tables import TableFollower
from hookstream.records import INSTANCES, Codec, InstanceRecord

log = logging.getLogger(__name__)

View = TypeVar("View")


class InstanceTable(Generic[View]):
    """`get(name)`: the view of a published instance; `view` may raise to skip a record."""

    def __init__(self, settings: Settings, codec: Codec, view: Callable[[InstanceRecord], View]):
        self._codec, self._view = codec, view
        self._by_name: dict[str, View] = {}
        self._follower = TableFollower(settings, [settings.topic(INSTANCES)], self._apply)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="instances")

    def get(self, name: str) -> View | None:
        return self._by_name.get(name)

    @property
    def ready(self) -> bool:
        return self._follower.caught_up

    def start(self, timeout_s: float = 60.0) -> None:
        self._follower.catch_up(timeout_s)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._follower.poll(0.5)
            except Exception:  # a broker outage: the table keeps its last state
                log.exception("following the instances topic")
                self._stop.wait(1.0)

    def _apply(self, topic: str, key: bytes, value: bytes | None, msg: Message) -> None:
        name = key.decode(errors="replace")
        if value is None:
            self._by_name.pop(name, None)
            return
        try:
            self._by_name[name] = self._view(
                self._codec.decode(value, msg.headers(), InstanceRecord))
        except (HookstreamError, ValueError) as e:
            log.error("instance %s skipped: %s", name, e)  # errors never carry the secret

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._follower.close()
