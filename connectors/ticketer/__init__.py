"""`hookstream run ticketer`: monitoring alerts (hookstream.alerts) into GLPI tickets."""

from __future__ import annotations

from connectors.ticketer.desk import TicketDesk
from connectors.ticketer.handler import AlertHandler, CompiledRule, Handled, Refusal
from connectors.ticketer.service import Ticketer, run_ticketer

__all__ = ["AlertHandler", "CompiledRule", "Handled", "Refusal", "TicketDesk", "Ticketer",
           "run_ticketer"]
