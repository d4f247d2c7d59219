"""What the admin API works on: the log store, the webhooks table, and the actions.

Webhook definitions (and entities and instances' time zones, for previews; the alert rules
and instances' API URLs, for the alerts pages) are followed from the compacted topics in a
background thread, so a request never reads a whole topic.
Writes go through the validation of `webhooks apply` (control.webhooks.validate and build)
and are published to the same topic; force send and redrive are connectors/delivery/redrive/'s,
the same code as the CLI's, and so is replay (control/replay.py), run in the background.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, text

from connectors.admin.auth import Principal
from connectors.delivery.http import Target
from connectors.delivery.redrive import (
    RedriveCount,
    count_redrive,
    find_delivery,
    force_send,
    redrive,
)
from hookstream.config import Settings
from hookstream.control.admin import expired_secrets_dropped, preview
from hookstream.control.replay import ReplayJob, ReplayStatus, replay
from hookstream.control.replay_runs import BackgroundReplays, ReplayRun
from hookstream.control.switch import enabled
from hookstream.control.webhooks import build, validate
from hookstream.errors import DecodeError, HookstreamError, InvalidDefinition, TransientError
from hookstream.io import TableFollower, codec_for, flush, producer, webhook_and_entity_applier
from hookstream.io.tables import Apply
from hookstream.matching import EntityTable
from hookstream.policy import rotated, secret_box
from hookstream.records import (
    ALERT_RULES,
    AUDIT,
    ENTITIES,
    INSTANCES,
    WEBHOOKS,
    AlertRule,
    AttemptRecord,
    AuditAction,
    AuditRecord,
    Codec,
    InstanceRecord,
    WebhookDefinition,
    parse_event_line,
)

log = logging.getLogger(__name__)


class AdminContext:
    def __init__(self, settings: Settings, engine: Engine,
                 clock: Callable[[], float] = time.time, sweep_every_s: float = 60.0):
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self._sweep_every_s = sweep_every_s
        self.codec = codec_for(settings)
        self.box = secret_box(settings)
        self._lock = threading.Lock()
        self._webhooks: dict[str, WebhookDefinition] = {}
        self._timezones: dict[str, str] = {}  # instance -> its time zone
        self._api_urls: dict[str, str] = {}  # instance -> its API URL ("" when none)
        self._rules: dict[str, AlertRule] = {}
        self.entities = EntityTable()
        self._stop = threading.Event()
        self._follower = TableFollower(
            settings,
            [settings.topic(WEBHOOKS), settings.topic(ENTITIES), settings.topic(INSTANCES),
             settings.topic(ALERT_RULES)],
            _with_rules(settings.topic(ALERT_RULES), self.codec, self._on_rule,
                        webhook_and_entity_applier(settings, self.codec, self._on_webhook,
                                                   self.entities, self._on_instance)),
        )
        self._thread = threading.Thread(target=self._follow, daemon=True, name="admin-tables")
        self._thread.start()
        self.replays = BackgroundReplays(settings)

    # -- the webhooks table ----------------------------------------------------------

    def _on_webhook(self, webhook_id: str, definition: WebhookDefinition | None) -> None:
        with self._lock:
            if definition is None:
                self._webhooks.pop(webhook_id, None)
            else:
                self._webhooks[webhook_id] = definition

    def _on_instance(self, name: str, instance: InstanceRecord | None) -> None:
        with self._lock:
            if instance is None:
                self._timezones.pop(name, None)
                self._api_urls.pop(name, None)
            else:
                self._timezones[name] = instance.timezone
                self._api_urls[name] = instance.api_url

    def _on_rule(self, rule_id: str, rule: AlertRule | None) -> None:
        with self._lock:
            if rule is None:
                self._rules.pop(rule_id, None)
            else:
                self._rules[rule_id] = rule

    def _follow(self) -> None:
        next_sweep = time.monotonic()
        while not self._stop.is_set():
            try:
                self._follower.poll(0.2)
                if self._follower.caught_up and time.monotonic() >= next_sweep:
                    self.sweep_expired_secrets()
                    next_sweep = time.monotonic() + self._sweep_every_s
            except Exception:  # a broker outage: keep serving what is known, log it
                log.warning("following the webhooks topic failed", exc_info=True)
                self._stop.wait(1.0)
        self._follower.close()

    def sweep_expired_secrets(self) -> list[str]:
        """Republish every webhook whose rotated-out secret is past its grace period,
        without it, so the secret leaves the compacted topic; the ids swept."""
        swept = expired_secrets_dropped(self.webhooks(), int(self.clock() * 1000))
        for definition in swept:
            self._publish(definition.id, definition)
            log.info("webhook %s: previous secret past its grace period, dropped (v%d)",
                     definition.id, definition.version)
        return [d.id for d in swept]

    def ready(self) -> bool:
        if not self._follower.caught_up:
            return False
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._follower.caught_up:
            if time.monotonic() > deadline:
                raise TransientError(f"webhooks table not caught up within {timeout_s:.0f}s")
            time.sleep(0.05)

    def close(self) -> None:
        self.replays.close()
        self._stop.set()
        self._thread.join(10)

    def webhooks(self) -> dict[str, WebhookDefinition]:
        with self._lock:
            return dict(self._webhooks)

    def webhook(self, webhook_id: str) -> WebhookDefinition | None:
        with self._lock:
            return self._webhooks.get(webhook_id)

    def alert_rules(self) -> dict[str, AlertRule]:
        with self._lock:
            return dict(self._rules)

    def api_url(self, instance: str) -> str:
        """The instance's GLPI API URL ("" when it has none, or is not known)."""
        with self._lock:
            return self._api_urls.get(instance, "")

    # -- writes ------------------------------------------------------------------------

    def _publish(self, key: str, definition: WebhookDefinition | None) -> None:
        topic = self.settings.topic(WEBHOOKS)
        prod = producer(self.settings)
        errors: list[str] = []

        def acked(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        if definition is None:
            prod.produce(topic, None, key.encode(), on_delivery=acked)
        else:
            value, headers = self.codec.encode(definition, topic)
            prod.produce(topic, value, key.encode(), headers=headers, on_delivery=acked)
        flush(prod)
        if errors:
            raise TransientError(f"the webhook was not published: {errors[0]}")
        self._on_webhook(key, definition)  # read your writes, before the follower sees it

    def put_webhook(self, raw: dict[str, Any]) -> tuple[WebhookDefinition, str]:
        """Validate (every error listed: InvalidDefinition) and publish one webhook."""
        problems = validate(raw, self.settings.retry_tiers_s, self.settings.allowed_networks)
        if problems:
            raise InvalidDefinition(str(raw.get("id", "webhook")), problems)
        previous = self.webhook(str(raw["id"]))
        definition = build(raw, self.box, previous, int(self.clock() * 1000))
        if definition is previous:
            return definition, "unchanged"
        self._publish(definition.id, definition)
        return definition, "created" if previous is None else "updated"

    def rotate_secret(self, webhook: WebhookDefinition, new_secret: str,
                      grace_s: int) -> WebhookDefinition:
        """Publish `webhook` with `new_secret` current and its secret kept for `grace_s`;
        ValueError when the new secret is the current one."""
        definition = rotated(webhook, new_secret, grace_s, int(self.clock() * 1000), self.box)
        self._publish(definition.id, definition)
        return definition

    def delete_webhook(self, webhook_id: str) -> None:
        self._publish(webhook_id, None)

    def enable_webhook(self, webhook: WebhookDefinition) -> tuple[WebhookDefinition, bool]:
        """`webhooks enable`: the webhook active again, its auto-disable record cleared;
        and whether it changed (False: it was active already)."""
        if webhook.is_active:
            return webhook, False
        definition = enabled(webhook, int(self.clock() * 1000))
        self._publish(definition.id, definition)
        return definition, True

    def preview(self, webhook: WebhookDefinition, event: dict[str, Any]) -> dict[str, Any]:
        now_ms = int(self.clock() * 1000)
        parsed = parse_event_line(json.dumps(event), webhook.instance, now_ms, "preview")
        with self._lock:
            timezone = self._timezones.get(webhook.instance, "UTC")
        return preview(webhook, parsed, self.entities, now_ms, timezone)

    def force_send(self, delivery_id: str, actor: str | None = None) -> AttemptRecord | None:
        """GLPI's "send now", as `hookstream deliveries send`, by the token named `actor`;
        None when the delivery or its webhook is no longer there."""
        request = find_delivery(self.settings, delivery_id)
        definition = None if request is None else self.webhook(request.webhook_id)
        if request is None or definition is None:
            return None
        return force_send(self.settings, request, Target.of(definition, self.box), self.clock,
                          actor)

    def redrive(self, webhook_id: str | None, since_ms: int, rate_per_s: float,
                instances: Collection[str] | None = None) -> int:
        return redrive(self.settings, webhook_id, since_ms, rate_per_s, instances=instances)

    def count_redrive(self, webhook_id: str | None, since_ms: int,
                      instances: Collection[str] | None = None) -> RedriveCount:
        return count_redrive(self.settings, webhook_id, since_ms, instances)

    def count_replay(self, job: ReplayJob) -> ReplayStatus:
        """What the replay would do now: a dry run, waited for."""
        return replay(self.settings, replace(job, dry_run=True))

    def replay_run(self, replay_id: str) -> ReplayRun | None:
        """A replay started by this process, as it goes or as it ended."""
        return self.replays.get(replay_id)

    def replay(self, who: Principal, job: ReplayJob, instance: str, via: str = "api"
               ) -> ReplayRun:
        """Start a replay in the background (ReplayBusy when it is running). A replay that
        writes is audited when it starts and when it ends, with its count."""
        if job.dry_run:
            return self.replays.start(job)

        def ended(run: ReplayRun) -> None:
            said = run.error or run.status.count.summary()
            self.audit(who, AuditAction.REPLAY, job.webhook_id,
                       f"replay {job.replay_id} ended: {said}"[:500], instance, via)

        def started() -> None:
            self.audit(who, AuditAction.REPLAY, job.webhook_id,
                       f"replay {job.replay_id} started", instance, via)

        return self.replays.start(job, started, ended)

    # -- the audit trail ---------------------------------------------------------------

    def audit(self, who: Principal, action: AuditAction, target: str, result: str,
              instance: str | None = None, via: str = "api") -> AuditRecord:
        """Record one write: a log line naming the token, and a record on hookstream.audit.
        The write has happened: a record Kafka does not take is logged as an error, and the
        answer to the caller still says what was done."""
        record = AuditRecord(uuid.uuid4().hex, int(self.clock() * 1000), who.name,
                             str(action), target, result, instance, via)
        log.info("%s", record.line())
        topic = self.settings.topic(AUDIT)
        errors: list[str] = []

        def acked(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        try:
            value, headers = self.codec.encode(record, topic)
            prod = producer(self.settings)
            prod.produce(topic, value, who.name.encode(), headers=headers, on_delivery=acked)
            flush(prod)
        except HookstreamError as e:
            errors.append(str(e))
        if errors:
            log.error("audit record %s not published: %s", record.audit_id, errors[0])
        return record


def _with_rules(topic: str, codec: Codec, on_rule: Callable[[str, AlertRule | None], None],
                tables: Apply) -> Apply:
    """`tables`, and the alert rules of `topic` into `on_rule` (an undecodable rule is
    logged and skipped, as the tables' records are)."""
    def apply(record_topic: str, key: bytes, value: bytes | None, msg: Any) -> None:
        if record_topic != topic:
            tables(record_topic, key, value, msg)
            return
        try:
            on_rule(key.decode(), None if value is None
                    else codec.decode(value, msg.headers(), AlertRule))
        except (DecodeError, ValueError) as e:
            log.error("skipping an undecodable alert rule at offset %s: %s", msg.offset(), e)

    return apply
