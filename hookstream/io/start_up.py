"""What a long-running component does once its start-up is done."""

from __future__ import annotations

import gc


def freeze_start_up() -> None:
    """Keep what start-up built out of the collector's sight: modules, clients and the
    tables' compiled webhooks live as long as the process, and every full collection would
    scan them again (freezing them cut the processor's and delivery's CPU per event,
    bench/README.md). Garbage is collected first, so that nothing dead is frozen. A part of
    it dropped later (a definition's older version) is freed when no cycle holds it, else
    kept: at most the start-up copy of the tables."""
    gc.collect()
    gc.freeze()


__all__ = ["freeze_start_up"]
