"""The history write-back: hookstream.attempts in, one entry per attempt on the GLPI item.

For webhooks with `log_in_item_history`, each attempt that got a response becomes a note
(Notepad) on the item, or a private followup on an ITIL item, through the instance's API
session (records/history.py says why). At least once: offsets are committed after the
entries are written; idempotent: the item's entries are read first and an attempt whose
marker is there is not written again.
Writes are spaced per instance (`writeback_rate_per_s`). A GLPI that cannot be reached is
waited for (the record is retried); an item GLPI refuses (purged, no notes, no right) is
logged, counted and skipped.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from confluent_kafka import Message

from connectors.glpi import GlpiApiError, GlpiSessions, backoff_s, client_for
from hookstream.config import Settings
from hookstream.errors import ConfigError, DecodeError, HookstreamError, PermanentError
from hookstream.io import codec_for, consumer, kafka_errors, metrics
from hookstream.io.health import serve
from hookstream.io.tables import TableFollower
from hookstream.records import ATTEMPTS, WEBHOOKS, AttemptRecord, WebhookDefinition
from hookstream.records.history import history_entry, history_marker, history_note

log = logging.getLogger(__name__)


class HistoryWriter:
    """Writes notes through the instances' GLPI sessions, spaced per instance."""

    def __init__(self, sessions: GlpiSessions):
        self._sessions = sessions

    def write(self, attempt: AttemptRecord, webhook: WebhookDefinition | None) -> str:
        """written, present (an earlier run wrote it), skipped or refused."""
        if webhook is None or not webhook.log_in_item_history:
            return "skipped"
        text = history_note(attempt, webhook.name)
        if text is None:
            return "skipped"
        where = f"{attempt.itemtype}/{attempt.items_id}"
        try:
            client = self._sessions.paced(attempt.instance)
        except ConfigError as e:  # the instance is gone or has no API access
            log.warning("write-back %s %s: %s", attempt.instance, where, e)
            return "refused"
        try:
            kind, fields = history_entry(attempt, text)
            entries: Any = client.request("GET", f"{where}/{kind}",
                                          params={"range": "0-9999"}).json()
            marker = history_marker(attempt)
            if any(marker in str(n.get("content", "")) for n in entries if isinstance(n, dict)):
                return "present"
            self._sessions.paced(attempt.instance).add_item(kind, fields)
        except GlpiApiError as e:
            log.warning("write-back %s %s: %s", attempt.instance, where, e)
            return "refused"
        return "written"

    def close(self) -> None:
        self._sessions.close()


def _written(writer: HistoryWriter, attempt: AttemptRecord, webhook: WebhookDefinition | None,
             running: list[bool]) -> None:
    """Write one attempt, waiting out an unreachable GLPI (with backoff) while running."""
    failures = 0
    while running[0]:
        try:
            outcome = writer.write(attempt, webhook)
        except HookstreamError as e:
            if isinstance(e, PermanentError):
                raise
            failures += 1
            log.warning("write-back %s: %s; retrying", attempt.instance, e)
            time.sleep(backoff_s(failures))
            continue
        metrics.WRITEBACK.labels(attempt.instance, outcome).inc()
        return


def run_writeback(settings: Settings) -> int:
    codec, webhooks = codec_for(settings), dict[str, WebhookDefinition]()

    def apply(topic: str, key: bytes, value: bytes | None, msg: Message) -> None:
        if value is None:
            webhooks.pop(key.decode(), None)
        else:
            webhooks[key.decode()] = codec.decode(value, msg.headers(), WebhookDefinition)

    running = [True]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: running.__setitem__(0, False))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    table = TableFollower(settings, [settings.topic(WEBHOOKS)], apply)
    table.catch_up()
    health = serve(settings.metrics_port, ready=lambda: table.caught_up, host=settings.metrics_host,
                   registry=metrics.registry("writeback"))
    writer = HistoryWriter(GlpiSessions(lambda name: client_for(settings, name),
                                        settings.writeback_rate_per_s))
    cons = consumer(settings, f"{settings.topic_prefix}hookstream-writeback")
    cons.subscribe([settings.topic(ATTEMPTS)])
    try:
        while running[0]:
            table.poll(0.0)
            messages = [m for m in cons.consume(200, 0.5) if m.error() is None]
            for msg in messages:
                try:
                    attempt = codec.decode(msg.value(), msg.headers(), AttemptRecord)
                except DecodeError as e:  # the log store reports those; nothing to write
                    log.warning("write-back: undecodable attempt skipped: %s", e)
                    continue
                _written(writer, attempt, webhooks.get(attempt.webhook_id), running)
            if messages and running[0]:
                with kafka_errors("committing write-back offsets"):
                    cons.commit(asynchronous=False)
    finally:
        cons.close()
        table.close()
        writer.close()
        if health is not None:
            health.shutdown()
    return 0
