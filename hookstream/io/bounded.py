"""Blocking Kafka calls with a bound the caller can rely on.

librdkafka's transactional calls take a timeout, but some ignore it: with the group
coordinator gone, `send_offsets_to_transaction` can block forever (librdkafka #5456,
still open in librdkafka 2.16). A transactional loop that must stay alive, answer
SIGTERM and keep polling within max.poll.interval.ms therefore never makes such a call
on its own thread: `bounded` makes it on a helper thread and waits at most the bound.
A call still running then is abandoned with its client (KafkaFatal: build new clients);
the helper thread keeps the abandoned client until librdkafka returns, if ever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaException

from hookstream.errors import KafkaFailed, KafkaFatal, KafkaRetriable
from hookstream.io.kafka import translate

T = TypeVar("T")

CANCEL_GRACE_S = 5.0
HUNG = "_HUNG"  # the code of a KafkaFatal raised for a call that exceeded its bound


def bounded(
    call: Callable[[], T], bound_s: float, what: str, cancel: threading.Event | None = None
) -> T:
    """The result of `call`, made on a helper thread; KafkaFatal if it has not returned
    within `bound_s` or when `cancel` is set meanwhile (the process is stopping)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # handed to the waiting thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name=f"kafka {what}").start()
    started = time.monotonic()
    deadline = started + bound_s
    while not done.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
        # On SIGTERM a call is given a moment to finish (a commit takes milliseconds when
        # the broker answers), not its whole bound.
        if cancel is not None and cancel.is_set() and time.monotonic() - started > CANCEL_GRACE_S:
            raise KafkaFatal(f"{what}: abandoned, the process is stopping", HUNG)
        if time.monotonic() >= deadline:
            raise KafkaFatal(f"{what}: no answer within {bound_s:.0f}s; client abandoned", HUNG)
    if "error" in box:
        error = box["error"]
        if isinstance(error, KafkaException):
            raise translate(error, what) from error
        raise error
    value: T = box["value"]
    return value


def retried(
    call: Callable[[], T],
    bound_s: float,
    what: str,
    cancel: threading.Event | None = None,
    attempts: int = 3,
) -> T:
    """`bounded`, made again while librdkafka calls the failure retriable (as its
    transactional API documents), at most `attempts` times in all."""
    for attempt in range(1, attempts + 1):
        try:
            return bounded(call, bound_s, what, cancel)
        except KafkaRetriable:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)
    raise KafkaFailed(f"{what}: no attempt made")  # attempts < 1


__all__ = ["HUNG", "bounded", "retried"]
