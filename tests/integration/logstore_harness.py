"""Running the log store in-process for integration tests."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, select

from connectors.logstore import run_logstore
from connectors.logstore.schema import attempts, deliveries, items
from hookstream.config import Settings


class RunningLogStore:
    """run_logstore in a thread, stopped on exit."""

    def __init__(self, settings: Settings):
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, args=(settings,), daemon=True)

    def _main(self, settings: Settings) -> None:
        try:
            run_logstore(settings, should_stop=self.stop.is_set)
        except BaseException as e:
            self.error = e

    def __enter__(self) -> RunningLogStore:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive() and self.error is None, self.error


def snapshot(engine: Engine) -> tuple[list[Any], list[Any], list[Any]]:
    with engine.connect() as conn:
        d = conn.execute(select(deliveries).order_by(deliveries.c.delivery_id)).all()
        a = conn.execute(select(attempts).order_by(attempts.c.kafka_partition,
                                                   attempts.c.kafka_offset)).all()
        i = conn.execute(select(items).order_by(items.c.instance, items.c.itemtype,
                                                items.c.items_id)).all()
    return [tuple(r) for r in d], [tuple(r) for r in a], [tuple(r) for r in i]


