"""The pure core of ordered delivery per item: heads, waiting deliveries, the held bound."""

from __future__ import annotations

from hookstream.policy import HeldBound, ItemQueues, Waiting


def test_one_head_per_key_and_the_others_wait_in_the_order_read() -> None:
    queues: ItemQueues[str] = ItemQueues()
    assert queues.admit("w:Ticket:1", 0, "new")
    assert not queues.admit("w:Ticket:1", 1, "update")
    assert queues.admit("w:Ticket:2", 2, "other item")  # another key never waits
    assert not queues.admit("w:Ticket:1", 3, "delete")
    assert [w.item for w in queues.waiting()] == ["update", "delete"]
    assert queues.is_head(0) and queues.is_head(2) and not queues.is_head(1)
    assert queues.finish(0) == Waiting(1, "update")
    assert queues.is_head(1) and not queues.is_head(0)
    assert queues.finish(1) == Waiting(3, "delete")
    assert queues.finish(3) is None and len(queues) == 1  # key 1 forgotten, key 2 left
    assert queues.finish(2) is None and len(queues) == 0


def test_finishing_what_is_no_head_changes_nothing() -> None:
    queues: ItemQueues[str] = ItemQueues()
    queues.admit("k", 5, "a")
    queues.admit("k", 6, "b")
    assert queues.finish(6) is None  # waiting, not a head
    assert queues.finish(99) is None
    assert queues.is_head(5) and [w.offset for w in queues.waiting()] == [6]


def test_the_bound_counts_records_and_bytes_and_resumes_below_half() -> None:
    bound = HeldBound(max_records=10, max_bytes=1000)
    assert not bound.over(9, 999)
    assert bound.over(10, 0) and bound.over(0, 1000)
    assert not bound.relieved(6, 0) and not bound.relieved(0, 501)
    assert bound.relieved(5, 500)
