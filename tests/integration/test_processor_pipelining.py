"""The processor prepares batch N+1 while batch N's transaction commits: an abort of N
throws N+1 away too (its records, its counts, its staging in the memory of event ids),
and both are read again, so nothing is lost nor duplicated."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import replace

import pytest
from confluent_kafka import Message, TopicPartition

from hookstream.config import Settings
from hookstream.errors import KafkaAbortable
from hookstream.records import DELIVERIES, ITEM_CHANGES, DeliveryRequest, ItemChangeEvent
from processors.clients import Committing, TransactionalClients
from processors.processor import PreparedBatch, Processor
from tests.integration.harness import publish, read
from tests.integration.test_processor import (
    assert_exactly,
    expected_without_render_errors,
    mixed_events,
    run_until,
    setup_tables,
)

FAILING_COMMITS = {2, 5, 9}  # the commits, counted from 0, that are made to abort


def with_copies(events: list[ItemChangeEvent], every: int, behind: int) -> list[ItemChangeEvent]:
    """`events` with a copy of every `every`-th one `behind` records after it: a copy in a
    batch after its original's, often the next one."""
    stream: list[ItemChangeEvent] = []
    copies: dict[int, list[ItemChangeEvent]] = {}
    for i, event in enumerate(events):
        stream.append(event)
        stream.extend(copies.pop(i, []))
        if i % every == 0:
            copies.setdefault(min(i + behind, len(events) - 1), []).append(event)
    return stream


def test_an_abort_of_a_batch_while_the_next_was_prepared_loses_and_duplicates_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replace(settings, processor_batch_size=40)
    setup_tables(settings)
    events = mixed_events(600)
    stream = with_copies(events, every=7, behind=30)
    publish(settings, stream, ITEM_CHANGES)

    commits = itertools.count()
    next_prepared = threading.Event()
    aborted_with_next_prepared: list[int] = []
    start_commit, prepare = TransactionalClients.start_commit, Processor._prepare

    def failing_start_commit(self: TransactionalClients,
                             offsets: list[TopicPartition]) -> Committing:
        n = next(commits)
        if n not in FAILING_COMMITS:
            return start_commit(self, offsets)
        next_prepared.clear()

        def abort_once_the_next_batch_is_prepared() -> None:
            if next_prepared.wait(30):
                aborted_with_next_prepared.append(n)
            raise KafkaAbortable(f"commit {n} made to abort", "_TEST")

        return Committing(abort_once_the_next_batch_is_prepared)

    def noting_prepare(self: Processor, clients: TransactionalClients, batch: list[Message],
                       staged: bool) -> PreparedBatch:
        prepared = prepare(self, clients, batch, staged)
        if staged:
            next_prepared.set()
        return prepared

    monkeypatch.setattr(TransactionalClients, "start_commit", failing_start_commit)
    monkeypatch.setattr(Processor, "_prepare", noting_prepare)
    processor = Processor(settings)
    run_until(processor, lambda: processor.stats["events"] >= len(stream), timeout_s=120)

    assert sorted(aborted_with_next_prepared) == sorted(FAILING_COMMITS)
    got = read(settings, DELIVERIES, DeliveryRequest)
    assert_exactly(Counter((r.event_id, r.webhook_id) for r in got),
                   expected_without_render_errors(events))
    assert len({r.delivery_id for r in got}) == len(got)
    # counted once each, on commit: the aborted batches and the ones prepared behind them
    # count when read again
    assert processor.stats["events"] == len(stream)
    assert processor.stats["duplicates"] == len(stream) - len(events)
    assert processor.stats["deliveries"] == len(got)
