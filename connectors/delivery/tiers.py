"""Tier scheduling: hold not-yet-due retries, pause and resume partitions.

A record not yet due is held in memory on a timer. Every record on tier k has
not_before >= its produce time + 0.8 x delay_k (jitter is ±20 %, Retry-After only
lengthens), so once a fetched record's produce time + 0.8 x delay is in the future,
nothing behind it is due before then: the partition is paused and resumed on a timer at
that moment. The loop never sleeps and no partition holds up another.

A partition is also paused while an origin it feeds is saturated (see limits):
pauses carry a reason, and a partition resumes once no reason is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from connectors.delivery.ports import TP, RecordSource
from hookstream.errors import KafkaFailed
from hookstream.io import kafka_errors
from hookstream.policy import JITTER
from hookstream.records import DeliveryRequest

log = logging.getLogger(__name__)
MAX_HELD = 20_000  # not-yet-due retries kept in memory before a partition is paused
DUE = "due"  # the pause reason of a tier partition whose next records are not due yet

Dispatch = Callable[[TP, int, DeliveryRequest, str], None]


class TierScheduler:
    def __init__(self, consumer: RecordSource, clock: Callable[[], float],
                 topic_delay_s: dict[str, int], dispatch: Dispatch,
                 release: Callable[[TP, int], None], max_held: int = MAX_HELD):
        self._consumer = consumer
        self._clock = clock
        self._topic_delay_s = topic_delay_s
        self._dispatch = dispatch
        self._release = release  # a record given back unhandled: read again after resume
        self._max_held = max_held
        self._paused: dict[TP, set[str]] = {}
        self._timers: dict[TP, asyncio.TimerHandle] = {}
        self._positions: dict[TP, int] = {}  # where a paused partition is read again from
        self._generation: dict[TP, int] = {}  # bumped on revoke: held records are dropped
        self.held = 0

    def is_paused(self, tp: TP) -> bool:
        return tp in self._paused

    def paused(self, reason: str | None = None) -> list[TP]:
        """Paused partitions (for `reason` only, if given)."""
        return [tp for tp, why in self._paused.items() if reason is None or reason in why]

    def receive(self, tp: TP, offset: int, produced_ms: int, request: DeliveryRequest) -> None:
        """Dispatch a due record now, hold one that is not due on a timer."""
        topic = tp[0]
        now_ms = int(self._clock() * 1000)
        if request.not_before <= now_ms or topic not in self._topic_delay_s:
            self._dispatch(tp, offset, request, topic)
            return
        if self.held >= self._max_held:
            self._release(tp, offset)  # not held: read again after the pause
            self.pause(tp, offset, DUE, max(request.not_before, now_ms + 1000))
            return
        self.held += 1
        generation = self._generation.get(tp, 0)

        def due() -> None:
            self.held -= 1
            if self._generation.get(tp, 0) == generation:  # else its new owner has it
                self._dispatch(tp, offset, request, topic)

        asyncio.get_running_loop().call_later((request.not_before - now_ms) / 1000, due)
        earliest_next_ms = produced_ms + int((1 - JITTER) * self._topic_delay_s[topic] * 1000)
        if earliest_next_ms > now_ms:
            self.pause(tp, offset + 1, DUE, earliest_next_ms)

    def pause(self, tp: TP, next_offset: int, reason: str, resume_at_ms: int | None = None
              ) -> None:
        """Stop fetching `tp` from `next_offset` on, until `reason` is lifted (by `lift`, or
        at `resume_at_ms`)."""
        reasons = self._paused.get(tp)
        if reasons is None:
            part = TopicPartition(tp[0], tp[1], next_offset)
            try:
                self._consumer.pause([part])
            except KafkaException as e:
                log.debug("pause of %s failed (revoked?): %s", tp, e)
                return
            # Recorded even if the seek fails (a broker away): a partition paused in the
            # client must be resumed, and `lift` seeks again before resuming.
            reasons = self._paused[tp] = set()
            self._positions[tp] = next_offset
            self._seek(tp, next_offset)
        reasons.add(reason)
        if resume_at_ms is not None:
            delay_s = max(0.0, resume_at_ms / 1000 - self._clock())
            self._timers[tp] = asyncio.get_running_loop().call_later(
                delay_s, self.lift, tp, reason)

    def lift(self, tp: TP, reason: str) -> None:
        """Lift one reason; the partition is fetched again once none is left."""
        reasons = self._paused.get(tp)
        if reasons is None or reason not in reasons:
            return
        reasons.discard(reason)
        if reasons:
            return
        del self._paused[tp]
        timer = self._timers.pop(tp, None)
        if timer is not None:
            timer.cancel()
        self._seek(tp, self._positions.pop(tp))  # records dropped while paused: read again
        try:
            self._consumer.resume([TopicPartition(tp[0], tp[1])])
        except KafkaException as e:
            log.debug("resume of %s failed (revoked?): %s", tp, e)

    def _seek(self, tp: TP, offset: int) -> None:
        try:
            self._consumer.seek(TopicPartition(tp[0], tp[1], offset))
        except KafkaException as e:
            log.debug("seek of %s failed (revoked?): %s", tp, e)

    def assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Resume what is assigned: librdkafka keeps a partition paused through a rebalance
        that gives it back to this consumer (eager assignors), but its reasons were
        forgotten on revoke, so nothing would ever lift it."""
        try:
            with kafka_errors("resume on assignment"):
                consumer.resume(partitions)
        except KafkaFailed as e:
            log.debug("%s", e)

    def revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        for part in partitions:
            tp = (part.topic, part.partition)
            self._generation[tp] = self._generation.get(tp, 0) + 1
            self._paused.pop(tp, None)
            self._positions.pop(tp, None)
            timer = self._timers.pop(tp, None)
            if timer is not None:
                timer.cancel()
