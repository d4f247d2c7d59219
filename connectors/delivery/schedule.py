"""Retry tiers: a record is submitted when it is due; one not yet due is held in memory.

Every record on tier k has not_before >= its produce time + 0.8 x delay_k (jitter is
±20 %, Retry-After only lengthens): `earliest_due_ms`. So once a fetched record's earliest
due time is in the future, nothing behind it is due before then: the partition is paused
and resumed on a timer at that moment (checkpoint). The loop never sleeps and no partition
holds up another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from connectors.delivery.checkpoint import DUE, Checkpoint
from connectors.delivery.ports import Job
from hookstream.policy import JITTER

MAX_HELD = 20_000  # not-yet-due retries kept in memory before a partition is paused


def earliest_due_ms(produced_ms: int, delay_s: int) -> int:
    """The earliest a record produced to a tier of `delay_s` at `produced_ms` can be due."""
    return produced_ms + int((1 - JITTER) * delay_s * 1000)


class Schedule:
    def __init__(self, checkpoint: Checkpoint, clock: Callable[[], float],
                 topic_delay_s: dict[str, int], submit: Callable[[Job], None],
                 max_held: int = MAX_HELD):
        self._checkpoint = checkpoint
        self._clock = clock
        self._topic_delay_s = topic_delay_s  # retry topic -> its delay
        self._submit = submit
        self._max_held = max_held
        self.held = 0

    def receive(self, job: Job, produced_ms: int) -> None:
        """Submit a due record now, hold one that is not due on a timer."""
        tp, request = job.tp, job.request
        now_ms = int(self._clock() * 1000)
        delay_s = self._topic_delay_s.get(tp.topic)
        if delay_s is None or request.not_before <= now_ms:
            self._submit(job)
            return
        if self.held >= self._max_held:
            self._checkpoint.unread(tp, job.offset)  # not held: read again after the pause
            self._checkpoint.pause(tp, DUE, job.offset, max(request.not_before, now_ms + 1000))
            return
        self.held += 1

        def due() -> None:
            self.held -= 1
            if self._checkpoint.owns(tp, job.generation):  # else its new owner has it
                self._submit(job)

        asyncio.get_running_loop().call_later((request.not_before - now_ms) / 1000, due)
        earliest_next_ms = earliest_due_ms(produced_ms, delay_s)
        if earliest_next_ms > now_ms:
            self._checkpoint.pause(tp, DUE, job.offset + 1, earliest_next_ms)
