"""Monitoring alerts into GLPI tickets, the pure part: the source formats read into
AlertEvents (`sources`), the rules that say which alerts open which tickets (`rules`) and
what the ticketer does with each alert (`tickets`). No I/O: `run alerts` and `run ticketer`
(connectors/alerts, connectors/ticketer) do it."""
