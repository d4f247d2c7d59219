"""The instances table of the ingest endpoint, followed from the compacted topic.

Read whole before readiness, then followed by a daemon thread, so `hookstream instances
apply` reaches a running endpoint without a restart. Each record is decrypted once, here.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Message

from hookstream.config import Settings
from hookstream.control.instances import ingest_view
from hookstream.errors import HookstreamError
from hookstream.io import TableFollower
from hookstream.policy import IngestInstance, SecretBox
from hookstream.records import INSTANCES, Codec, InstanceRecord

log = logging.getLogger(__name__)


class InstanceTable:
    def __init__(self, settings: Settings, codec: Codec, box: SecretBox):
        self._codec, self._box = codec, box
        self._by_name: dict[str, IngestInstance] = {}
        self._ttl_s = settings.ingest_dedup_ttl_s
        self._follower = TableFollower(settings, [settings.topic(INSTANCES)], self._apply)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="instances")

    def get(self, name: str) -> IngestInstance | None:
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
            record = self._codec.decode(value, msg.headers(), InstanceRecord)
            view = ingest_view(record, self._box)
        except (HookstreamError, ValueError) as e:
            log.error("instance %s skipped: %s", name, e)  # errors never carry the secret
            return
        if view.tolerance_s + 300 > self._ttl_s:
            log.warning(
                "instance %s: timestamp tolerance %ss exceeds the dedup memory of %.0fs; "
                "raise ingest_dedup_ttl_s", name, view.tolerance_s, self._ttl_s,
            )
        self._by_name[name] = view

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._follower.close()
