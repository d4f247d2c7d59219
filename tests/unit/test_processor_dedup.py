"""The processor's memory of recent event ids (processors/dedup.py), without a broker:
the rule, its bounds per partition, batches that abort, and memories rebuilt from the
partition alone deciding as the memory that never stopped."""

from __future__ import annotations

import random

import pytest

from processors.dedup import Copy, RecentEvents, Span

WINDOW_MS = 60_000
T0 = 1_800_000_000_000


def memory(capacity: int = 1000, partitions: tuple[int, ...] = (0,)) -> RecentEvents:
    recent = RecentEvents(WINDOW_MS, capacity)
    for partition in partitions:
        recent.rebuild(Span(partition, None, 0, 0), [])
    return recent


def run(recent: RecentEvents, records: list[tuple[str, int | None]], partition: int = 0,
        start: int = 0) -> list[bool]:
    """Each record checked in a batch of its own, committed: whether it was a copy."""
    verdicts = []
    for offset, (event_id, timestamp_ms) in enumerate(records, start):
        recent.begin()
        verdicts.append(recent.is_copy(partition, Copy(event_id, timestamp_ms)))
        recent.commit({partition: offset + 1})
    return verdicts


def test_a_copy_inside_the_window_is_skipped_and_one_past_it_is_planned() -> None:
    recent = memory()
    assert run(recent, [("a", T0), ("b", T0 + 1), ("a", T0 + WINDOW_MS),
                        ("b", T0 + 1 + WINDOW_MS + 1)]) == [False, False, True, False]


def test_the_window_runs_from_the_latest_copy_so_a_chain_of_retries_stays_skipped() -> None:
    # GLPI's retries a minute apart: each within the window of the one before
    minute = WINDOW_MS // 2
    recent = memory()
    assert run(recent, [("a", T0 + n * minute) for n in range(6)]) == [False] + [True] * 5


def test_the_window_ends_at_the_largest_timestamp_so_far_not_at_the_copy() -> None:
    # a late record with an old timestamp: the window is measured from the partition's
    # newest timestamp, as a rebuild from offsets_for_times would see it
    recent = memory()
    verdicts = run(recent, [("a", T0), ("z", T0 + WINDOW_MS + 10), ("a", T0 + 5)])
    assert verdicts == [False, False, False]


def test_records_without_a_timestamp_count_as_recent() -> None:
    recent = memory()
    assert run(recent, [("a", None), ("a", T0), ("b", T0), ("b", None)]) == [
        False, True, False, True]


def test_the_capacity_bounds_each_partition_alone_and_counts_what_it_forgets() -> None:
    recent = memory(capacity=3, partitions=(0, 1))
    run(recent, [("p1", T0)], partition=1)
    assert run(recent, [(f"id{n}", T0 + n) for n in range(4)]) == [False] * 4
    assert recent.held() == {0: 3, 1: 1}
    assert recent.total_forgotten == 1  # id0, dropped inside its window
    assert run(recent, [("id0", T0 + 5), ("id3", T0 + 6)], start=4) == [False, True]
    assert run(recent, [("p1", T0 + 7)], partition=1, start=1) == [True]  # untouched


def test_ids_past_the_window_leave_the_memory_without_counting_as_forgotten() -> None:
    recent = memory(capacity=3)
    run(recent, [("a", T0), ("b", T0 + 1), ("c", T0 + 2 * WINDOW_MS)])
    assert recent.held() == {0: 1}
    assert recent.total_forgotten == 0


def test_a_batch_that_does_not_commit_is_not_remembered_and_reads_again_the_same() -> None:
    recent = memory()
    recent.begin()
    first = [recent.is_copy(0, Copy(i, T0)) for i in ("a", "b", "a")]
    assert first == [False, False, True]  # a copy inside its own batch
    recent.begin()  # aborted: the batch is read again
    again = [recent.is_copy(0, Copy(i, T0)) for i in ("a", "b", "a")]
    assert again == first
    recent.commit({0: 3})
    recent.begin()
    assert recent.is_copy(0, Copy("b", T0 + 1))


def test_the_next_batch_is_checked_against_the_staged_one_and_kept_when_it_commits() -> None:
    recent = memory(partitions=(0, 1))
    recent.begin()
    assert [recent.is_copy(0, Copy(i, T0)) for i in ("a", "b")] == [False, False]
    recent.stage({0: 2})  # batch N's commit under way: batch N+1 is checked meanwhile
    assert recent.span(0, 2, T0) is None  # N+1 starts where N ends: nothing to read back
    assert [recent.is_copy(0, Copy(i, T0 + 1)) for i in ("b", "c", "c")] == [True, False, True]
    recent.commit_staged()  # N committed: N+1 stays open
    recent.stage({0: 5})
    recent.commit_staged()
    recent.begin()
    assert [recent.is_copy(0, Copy(i, T0 + 2)) for i in ("a", "c", "d")] == [True, True, False]
    assert recent.span(0, 5, T0) is None and recent.span(1, 0, T0) is None


def test_an_abort_of_the_staged_batch_forgets_it_and_the_batch_checked_behind_it() -> None:
    recent = memory()
    recent.begin()
    assert not recent.is_copy(0, Copy("a", T0))
    recent.stage({0: 1})
    assert recent.is_copy(0, Copy("a", T0)) and not recent.is_copy(0, Copy("b", T0))
    recent.begin()  # N aborted: N and N+1 are read again from offset 0
    assert recent.span(0, 0, T0) is None
    assert [recent.is_copy(0, Copy(i, T0)) for i in ("a", "a", "b")] == [False, True, False]


def test_span_reads_back_the_window_at_most_capacity_records_and_none_when_known() -> None:
    recent = memory(capacity=100)
    assert recent.span(0, 0, T0) is None  # this process's memory ends at offset 0
    assert recent.span(0, 7, T0) == Span(0, T0 - WINDOW_MS, 0, 7)  # others moved it on
    assert recent.span(3, 500, None) == Span(3, None, 400, 500)


def test_memories_of_partitions_no_longer_read_are_dropped_and_the_count_kept() -> None:
    recent = memory(capacity=1, partitions=(0, 1))
    run(recent, [("a", T0), ("b", T0)])
    recent.keep_only([1])
    assert recent.held() == {1: 0}
    assert recent.total_forgotten == 1
    assert recent.span(0, 2, T0) is not None  # read back if it comes back


def reference(records: list[tuple[str, int]], window_ms: int) -> list[bool]:
    """The rule of processors/dedup.py, written out: the latest earlier copy at least
    W - window, W the largest timestamp up to and including the record."""
    verdicts, latest, watermark = [], {}, None
    for event_id, timestamp_ms in records:
        watermark = timestamp_ms if watermark is None else max(watermark, timestamp_ms)
        previous = latest.get(event_id)
        verdicts.append(previous is not None and previous >= watermark - window_ms)
        latest[event_id] = timestamp_ms
    return verdicts


def stream(rng: random.Random, count: int) -> list[tuple[str, int]]:
    """Events a second or so apart with skewed clocks, each resent now and then, up to
    three window lengths later."""
    records: list[tuple[int, str]] = []
    for n in range(count):
        at = T0 + n * 700 + rng.randrange(-5_000, 5_000)
        records.append((at, f"e{n}"))
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            records.append((at + rng.randrange(0, 3 * WINDOW_MS), f"e{n}"))
    records.sort(key=lambda r: r[0] + rng.randrange(-3_000, 3_000))
    return [(event_id, at) for at, event_id in records]


def offsets_for_times(records: list[tuple[str, int]], since_ms: int) -> int:
    """Kafka's answer: the earliest offset timestamped `since_ms` or later."""
    return next((o for o, (_, at) in enumerate(records) if at >= since_ms), len(records))


@pytest.mark.parametrize("seed", range(8))
def test_restarts_and_rebalances_anywhere_decide_as_the_rule(seed: int) -> None:
    """A memory rebuilt from the partition's records at any batch boundary (a restart, a
    new owner) makes the same decisions as the rule, copy for copy."""
    rng = random.Random(seed)
    records = stream(rng, 600)
    verdicts: list[bool] = []
    recent, offset = RecentEvents(WINDOW_MS, 10_000), 0
    rebuilds = 0
    while offset < len(records):
        batch = records[offset:offset + rng.randrange(1, 20)]
        if rng.random() < 0.2:  # this batch lands on a process that must read back first
            recent = RecentEvents(WINDOW_MS, 10_000)
            rebuilds += 1
        span = recent.span(0, offset, batch[0][1])
        if span is not None:
            assert span.since_ms is not None
            start = max(span.from_offset, offsets_for_times(records, span.since_ms))
            recent.rebuild(span, [Copy(*r) for r in records[start:span.until_offset]])
        recent.begin()
        if rng.random() < 0.1:  # aborted once, read again
            [recent.is_copy(0, Copy(*r)) for r in batch]
            recent.begin()
        verdicts += [recent.is_copy(0, Copy(*r)) for r in batch]
        offset += len(batch)
        recent.commit({0: offset})
    assert rebuilds > 5
    assert sum(verdicts) > 100  # the stream has copies in and out of the window
    assert verdicts == reference(records, WINDOW_MS)


@pytest.mark.parametrize("seed", range(4))
def test_past_the_capacity_a_copy_within_capacity_records_is_still_skipped(seed: int) -> None:
    rng, capacity = random.Random(seed), 50
    records = stream(rng, 600)
    rule = reference(records, WINDOW_MS)
    guaranteed = [
        rule[o] and any(records[p][0] == records[o][0] for p in range(o - capacity, o))
        for o in range(len(records))
    ]
    recent, offset, verdicts = RecentEvents(WINDOW_MS, capacity), 0, []
    while offset < len(records):
        batch = records[offset:offset + rng.randrange(1, 20)]
        if rng.random() < 0.2:
            recent = RecentEvents(WINDOW_MS, capacity)
        span = recent.span(0, offset, batch[0][1])
        if span is not None:
            assert span.since_ms is not None
            start = max(span.from_offset, offsets_for_times(records, span.since_ms))
            recent.rebuild(span, [Copy(*r) for r in records[start:span.until_offset]])
        recent.begin()
        verdicts += [recent.is_copy(0, Copy(*r)) for r in batch]
        offset += len(batch)
        recent.commit({0: offset})
    assert max(recent.held().values()) <= capacity
    assert all(v for v, g in zip(verdicts, guaranteed, strict=True) if g)
    firsts = {event_id: o for o, (event_id, _) in reversed(list(enumerate(records)))}
    assert not any(verdicts[o] for o in firsts.values())  # every event planned once at least
    assert sum(guaranteed) > 20
