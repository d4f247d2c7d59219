"""`hookstream run writeback`: delivery attempts written into GLPI items' history (notes)."""

from __future__ import annotations

from connectors.writeback.writer import HistoryWriter, run_writeback

__all__ = ["HistoryWriter", "run_writeback"]
