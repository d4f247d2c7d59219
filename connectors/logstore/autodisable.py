"""Auto-disable, decided by the log store after each batch it writes.

The log store reads every attempt of every webhook (no delivery process does), folds
them into each webhook's target health in the same transaction as the batch, and then
asks hookstream.policy.verdict about the webhooks the batch touched. A webhook to
disable is published as `webhooks apply` publishes (hookstream.control.admin): the
webhook.disabled event on hookstream.operations, then the next version of the
definition, inactive, with its reason and time. The processor stops planning
deliveries for it; those already planned go on through their retries and the DLQ.

The current definitions come from following hookstream.webhooks, from the first batch
with attempts on (a webhook inactive already, or unknown, is left alone; `enabled_at_ms`
tells which failures still count); a webhooks topic not there yet only postpones it.
A publication that fails is logged and tried again at the next batch that touches the
webhook: failing targets keep producing attempts while their retries run.

Without a running log store nothing is disabled: deliveries fail, retry and dead-letter
as before. Once it runs again it catches up, and decides only on fresh failures
(hookstream.policy.autodisable.FRESH_MS), never on old ones that later attempts may refute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from connectors.logstore.store import LogStore
from hookstream.config import Settings
from hookstream.control.admin import disable_webhook
from hookstream.control.switch import disabled
from hookstream.errors import HookstreamError, TransientError
from hookstream.io import TableFollower, codec_for, metrics, webhook_and_entity_applier
from hookstream.policy import verdict
from hookstream.records import WEBHOOKS, WebhookDefinition

log = logging.getLogger(__name__)


class AutoDisable:
    def __init__(self, settings: Settings, store: LogStore,
                 clock: Callable[[], float] = time.time):
        self._settings = settings
        self._store = store
        self._clock = clock
        self._after_ms = int(settings.autodisable_after_s * 1000)
        self.webhooks: dict[str, WebhookDefinition] = {}
        self._tables: TableFollower | None = None  # followed from the first check on

    def _follow(self) -> TableFollower:
        """The webhooks table, read to its end the first time (TransientError while the
        topic cannot be read: the next check tries again)."""
        if self._tables is None:
            tables = TableFollower(
                self._settings, [self._settings.topic(WEBHOOKS)],
                webhook_and_entity_applier(self._settings, codec_for(self._settings),
                                           self._on_webhook, None))
            try:
                tables.catch_up()
            except TransientError:
                tables.close()
                raise
            self._tables = tables
        return self._tables

    def _on_webhook(self, webhook_id: str, definition: WebhookDefinition | None) -> None:
        if definition is None:
            self.webhooks.pop(webhook_id, None)
        else:
            self.webhooks[webhook_id] = definition

    def check(self, webhook_ids: Iterable[str]) -> int:
        """Disable those of `webhook_ids` whose target has failed long enough; how many.
        TransientError if the database or the webhooks topic cannot be read (the next batch
        asks again)."""
        self._follow().poll(0)
        active = {i: d for i in set(webhook_ids)
                  if (d := self.webhooks.get(i)) is not None and d.is_active}
        if not active:
            return 0
        now_ms = int(self._clock() * 1000)
        done = 0
        for ident, health in self._store.health(active).items():
            webhook = active[ident]
            found = verdict(health, now_ms, self._after_ms, webhook.enabled_at_ms)
            if found is None:
                continue
            try:
                disable_webhook(self._settings, webhook, found.reason, now_ms)
            except HookstreamError as e:
                log.warning("webhook %s not disabled yet (tried again at its next failure): %s",
                            ident, e)
                continue
            # as published, so the next batch does not publish it again before it is read back
            self.webhooks[ident] = disabled(webhook, found.reason, now_ms)
            metrics.WEBHOOKS_DISABLED.labels(webhook.instance).inc()
            log.warning("webhook %s disabled: %s", ident, found.reason)
            done += 1
        return done

    def close(self) -> None:
        if self._tables is not None:
            self._tables.close()
