from connectors.delivery.offsets import OffsetTracker


def test_commits_only_up_to_the_lowest_pending_offset() -> None:
    tracker = OffsetTracker()
    for offset in (5, 6, 7, 8):
        tracker.add(offset)
    assert tracker.done(7) is None  # 5 and 6 still in flight
    assert tracker.done(6) is None
    assert tracker.done(5) == 8     # 5, 6, 7 durable: commit 8
    assert len(tracker) == 1
    assert tracker.done(8) == 9
    assert len(tracker) == 0
