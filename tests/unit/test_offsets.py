from connectors.delivery.checkpoint import OffsetTracker


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


def test_a_record_given_back_is_never_committed_past() -> None:
    """A retry not held (the schedule is full) is read again after a pause: until then the
    commit stops before it, however the records before it end."""
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.add(offset)
    tracker.unread(7)
    assert tracker.done(6) is None
    assert tracker.done(5) == 7  # 7 is next to read, not done
    tracker.add(7)  # read again after the pause
    assert tracker.done(7) == 8
