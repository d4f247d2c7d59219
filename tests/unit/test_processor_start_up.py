"""A component's start-up heap kept out of the collector's sight (io.freeze_start_up)."""

import gc
import weakref

from hookstream.io import freeze_start_up


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_garbage_is_collected_before_the_rest_is_frozen() -> None:
    garbage, kept = _Node(), _Node()
    dead = weakref.ref(garbage)
    del garbage
    try:
        freeze_start_up()
        assert dead() is None  # not frozen with the rest, where it would never be freed
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # out of the collector's sight
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())
