"""The admin HTTP API (FastAPI): webhooks, the queries log, the queue, force send, redrive,
replay; the alert rules and the alerts with their tickets.

Every /v1 route needs a bearer token (401 without a known one). A token scoped to some
instances sees nothing of the others: their webhooks and deliveries answer 404 as if
they did not exist. A read-only token gets 403 on every action. Errors answer
`{"errors": [...]}`, and never echo the request's values (a secret could be one).

No `from __future__ import annotations` here: FastAPI reads the route annotations at run
time, and those naming the local aliases (Reader, Actor) must be objects, not strings.
"""


from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.admin import models as m
from connectors.admin.auth import Principal, authenticate
from connectors.admin.context import AdminContext
from connectors.logstore import (
    AlertCursor,
    AlertFilter,
    AuditFilter,
    Cursor,
    DeliveryFilter,
    Page,
    alert_history,
    delivery_detail,
    last_item,
    list_alerts,
    list_audit,
    list_deliveries,
    list_operations,
    queue_view,
)
from connectors.logstore.queries import BadCursor, BadFilter
from hookstream.alerting.links import ticket_url
from hookstream.control.replay import ReplayJob
from hookstream.control.replay_runs import ReplayBusy, ReplayRun
from hookstream.control.webhooks import redacted
from hookstream.errors import InvalidDefinition
from hookstream.io.metrics import registry
from hookstream.policy import parse_grace
from hookstream.records import AuditAction, only_instance, redrive_target, send_result
from hookstream.records.replays import replay_identity

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.Problem, "description": text}
    for code, text in ((401, "no valid bearer token"), (403, "a read-only token"),
                       (404, "not found, or not in the token's instances"),
                       (422, "invalid request: every problem listed"))
}


def _problem(status: int, *errors: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, detail=list(errors), headers=headers)


def create_app(ctx: AdminContext, tokens: dict[str, Principal]) -> FastAPI:
    # /docs and /redoc load Swagger UI and ReDoc from the app (fastapi-offline's copies),
    # not from a CDN: they work where the cluster has no way out
    app = FastAPIOffline(title="hookstream admin API", version="1", responses=ERRORS,
                         description=__doc__)
    bearer = HTTPBearer(auto_error=False, description="a token of the admin_tokens setting")

    def who(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
            ) -> Principal:
        found = None if credentials is None else authenticate(
            tokens, f"Bearer {credentials.credentials}")
        if found is None:
            raise _problem(401, "a valid bearer token is required",
                           headers={"WWW-Authenticate": "Bearer"})
        return found

    def actor(p: Annotated[Principal, Depends(who)]) -> Principal:
        if not p.writable:
            raise _problem(403, f"token {p.name} is read-only")
        return p

    Reader = Annotated[Principal, Depends(who)]
    Actor = Annotated[Principal, Depends(actor)]

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        errors = e.detail if isinstance(e.detail, list) else [str(e.detail)]
        return JSONResponse({"errors": errors}, e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        # loc and msg only: pydantic's `input` would echo what was sent.
        errors = [".".join(str(x) for x in err.get("loc", ())) + ": " + str(err.get("msg"))
                  for err in e.errors()]
        return JSONResponse({"errors": errors}, 422)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> PlainTextResponse:
        ready = ctx.ready()
        return PlainTextResponse("ready\n" if ready else "loading\n", 200 if ready else 503)

    exported = registry("admin")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(exported), media_type=CONTENT_TYPE_LATEST)

    # -- webhooks ----------------------------------------------------------------------

    def visible(p: Principal, webhook_id: str) -> Any:
        found = ctx.webhook(webhook_id)
        if found is None or not p.sees(found.instance):
            raise _problem(404, f"no webhook {webhook_id}")
        return found

    @app.get("/v1/webhooks", response_model=m.WebhookList)
    def webhooks(p: Reader) -> dict[str, Any]:
        shown = [redacted(d) for d in sorted(ctx.webhooks().values(), key=lambda d: d.id)
                 if p.sees(d.instance)]
        return {"items": shown}

    @app.get("/v1/webhooks/{webhook_id}", response_model=dict[str, Any])
    def webhook(p: Reader, webhook_id: m.WebhookId) -> dict[str, Any]:
        return redacted(visible(p, webhook_id))

    @app.put("/v1/webhooks/{webhook_id}", response_model=m.WebhookPut)
    def put_webhook(p: Actor, webhook_id: m.WebhookId,
                    raw: Annotated[dict[str, Any], Body(
                        description="a webhook as in `webhooks apply` YAML")]) -> dict[str, Any]:
        if raw.setdefault("id", webhook_id) != webhook_id:
            raise _problem(422, "id: differs from the id in the path")
        existing = ctx.webhook(webhook_id)
        if existing is not None and not p.sees(existing.instance):
            raise _problem(404, f"no webhook {webhook_id}")
        instance = raw.get("instance")
        if isinstance(instance, str) and instance and not p.sees(instance):
            raise _problem(403, f"token {p.name} may not manage this instance's webhooks")
        try:
            definition, state = ctx.put_webhook(raw)
        except InvalidDefinition as e:
            raise _problem(422, *_scrubbed(e.errors, raw)) from None
        ctx.audit(p, AuditAction.WEBHOOK_PUT, webhook_id, state, definition.instance)
        return {"webhook": redacted(definition), "state": state}

    @app.post("/v1/webhooks/{webhook_id}/rotate-secret", response_model=m.WebhookPut)
    def rotate_secret(p: Actor, webhook_id: m.WebhookId,
                      body: m.RotateSecretIn) -> dict[str, Any]:
        """The new secret signs at once; the current one signs beside it (Standard Webhooks
        only) for the grace period, then leaves the definitions topic."""
        found = visible(p, webhook_id)
        try:
            definition = ctx.rotate_secret(found, body.secret, parse_grace(body.grace))
        except ValueError as e:  # no secret in the message: "is the current one", a grace
            raise _problem(422, str(e)) from None
        ctx.audit(p, AuditAction.WEBHOOK_ROTATE_SECRET, webhook_id,
                  f"rotated, v{definition.version}", definition.instance)
        return {"webhook": redacted(definition), "state": "updated"}

    @app.delete("/v1/webhooks/{webhook_id}", status_code=204)
    def delete_webhook(p: Actor, webhook_id: m.WebhookId) -> Response:
        found = visible(p, webhook_id)
        ctx.delete_webhook(webhook_id)
        ctx.audit(p, AuditAction.WEBHOOK_DELETE, webhook_id, "deleted", found.instance)
        return Response(status_code=204)

    @app.post("/v1/webhooks/{webhook_id}/enable", response_model=m.WebhookEnabled)
    def enable_webhook(p: Actor, webhook_id: m.WebhookId) -> dict[str, Any]:
        """`hookstream webhooks enable`: active again, its auto-disable record cleared
        (failures before now no longer count towards disabling it again)."""
        definition, changed = ctx.enable_webhook(visible(p, webhook_id))
        state = "enabled" if changed else "already active"
        ctx.audit(p, AuditAction.WEBHOOK_ENABLE, webhook_id, state, definition.instance)
        return {"webhook": redacted(definition), "state": state}

    @app.post("/v1/webhooks/{webhook_id}/preview", response_model=m.PreviewOut)
    def preview(p: Reader, webhook_id: m.WebhookId, body: m.PreviewIn) -> dict[str, Any]:
        webhook = visible(p, webhook_id)
        if (body.event is None) == (body.item is None):
            raise _problem(422, "give one of event or item")
        event = body.event
        if body.item is not None:
            ref = body.item
            event = last_item(ctx.engine, ref.instance, ref.itemtype, ref.items_id, p.scope)
            if event is None:
                raise _problem(404, f"no change of {ref.itemtype} {ref.items_id} seen")
        assert event is not None
        try:
            return ctx.preview(webhook, event)
        except ValueError as e:
            raise _problem(422, f"event: {e}") from None

    # -- the queries log ---------------------------------------------------------------

    class Filters:
        def __init__(
            self,
            state: m.StateName | None = None,
            status_code: Annotated[int | None, Query(ge=100, le=599)] = None,
            outcome: m.OutcomeName | None = None,
            since_ms: Annotated[int | None, Query(ge=0, le=m.MAX_INT)] = None,
            until_ms: Annotated[int | None, Query(ge=0, le=m.MAX_INT)] = None,
            cursor: Annotated[str | None, Query(
                max_length=400, description="a page's `next_cursor` (older deliveries), "
                "or with `newer` its `prev_cursor`")] = None,
            newer: Annotated[bool, Query(
                description="the page of deliveries just newer than `cursor`")] = False,
            limit: Annotated[int, Query(ge=1, le=500)] = 50,
        ):
            self.where = DeliveryFilter(state=state, status_code=status_code, outcome=outcome,
                                        since_ms=since_ms, until_ms=until_ms)
            self.cursor, self.newer, self.limit = cursor, newer, limit

    Filtered = Annotated[Filters, Depends()]

    def page_of(p: Principal, where: DeliveryFilter, f: Filters) -> Page:
        try:
            at = None if f.cursor is None else Cursor.decode(f.cursor)
            return list_deliveries(ctx.engine, where, p.scope, at, f.limit, f.newer)
        except BadCursor as e:
            raise _problem(422, f"cursor: {e}") from None
        except BadFilter as e:
            raise _problem(422, str(e)) from None

    def answer(page: Page) -> dict[str, Any]:
        return {"items": page.items, "next_cursor": page.next_cursor,
                "prev_cursor": page.prev_cursor}

    @app.get("/v1/deliveries", response_model=m.DeliveryPage)
    def deliveries(p: Reader, f: Filtered,
                   instance: Annotated[str | None, Query(pattern=m.NAME)] = None,
                   webhook_id: Annotated[str | None, Query(pattern=m.WEBHOOK_ID)] = None,
                   id_prefix: Annotated[str | None, Query(
                       pattern=r"^[0-9a-f]{1,64}$",
                       description="the start of a delivery id")] = None,
                   ) -> dict[str, Any]:
        if instance is not None and not p.sees(instance):
            return {"items": [], "next_cursor": None, "prev_cursor": None}
        where = DeliveryFilter(**{**_fields(f.where), "instance": instance,
                                  "webhook_id": webhook_id, "id_prefix": id_prefix})
        return answer(page_of(p, where, f))

    @app.get("/v1/webhooks/{webhook_id}/deliveries", response_model=m.DeliveryPage)
    def webhook_log(p: Reader, webhook_id: m.WebhookId, f: Filtered) -> dict[str, Any]:
        existing = ctx.webhook(webhook_id)
        if existing is not None and not p.sees(existing.instance):
            raise _problem(404, f"no webhook {webhook_id}")
        where = DeliveryFilter(**{**_fields(f.where), "webhook_id": webhook_id})
        return answer(page_of(p, where, f))

    @app.get("/v1/items/{instance}/{itemtype}/{items_id}/deliveries",
             response_model=m.DeliveryPage)
    def item_log(p: Reader, f: Filtered,
                 instance: Annotated[str, Path(pattern=m.NAME)],
                 itemtype: Annotated[str, Path(pattern=m.NAME)],
                 items_id: Annotated[int, Path(ge=0, le=m.MAX_INT)]) -> dict[str, Any]:
        if not p.sees(instance):
            raise _problem(404, "no such instance")
        where = DeliveryFilter(**{**_fields(f.where), "instance": instance,
                                  "itemtype": itemtype, "items_id": items_id})
        return answer(page_of(p, where, f))

    @app.get("/v1/deliveries/{delivery_id}", response_model=m.DeliveryDetail)
    def delivery(p: Reader, delivery_id: m.DeliveryId) -> dict[str, Any]:
        found = delivery_detail(ctx.engine, delivery_id, p.scope)
        if found is None:
            raise _problem(404, f"no delivery {delivery_id}")
        return found

    @app.get("/v1/queue", response_model=m.Queue)
    def queue(p: Reader) -> dict[str, Any]:
        return queue_view(ctx.engine, p.scope, now_ms=int(ctx.clock() * 1000))

    # -- actions -----------------------------------------------------------------------

    @app.post("/v1/deliveries/{delivery_id}/send", response_model=m.SendOut)
    def send_now(p: Actor, delivery_id: m.DeliveryId) -> dict[str, Any]:
        found = delivery_detail(ctx.engine, delivery_id, p.scope)
        if found is None:
            raise _problem(404, f"no delivery {delivery_id}")
        record = ctx.force_send(delivery_id, p.name)
        if record is None:
            raise _problem(404, f"delivery {delivery_id} or its webhook is no longer there")
        result = send_result(str(record.outcome), record.status_code, record.error)
        ctx.audit(p, AuditAction.SEND_NOW, delivery_id, result, found["instance"])
        return {"outcome": record.outcome, "status_code": record.status_code,
                "error": record.error}

    @app.get("/v1/dlq/redrive", response_model=m.RedriveCountOut)
    def redrive_count(p: Reader, f: Annotated[m.RedriveQuery, Query()]) -> dict[str, Any]:
        """What POST /v1/dlq/redrive with the same values would send again, sent nothing."""
        if f.webhook_id is not None:
            visible(p, f.webhook_id)
        count = ctx.count_redrive(f.webhook_id, f.since_ms, p.instances)
        return {"count": count.total, "summary": count.summary(),
                "by_status": [{"status_code": s, "count": n}
                              for s, n in sorted(count.by_status.items(),
                                                 key=lambda kv: kv[0] or 0)]}

    @app.post("/v1/dlq/redrive", response_model=m.RedriveOut)
    def redrive(p: Actor, body: m.RedriveIn) -> dict[str, Any]:
        """Without webhook_id, every webhook the token sees: a token scoped to instances
        redrives within its instances only."""
        instance = only_instance(p.instances)
        if body.webhook_id is not None:
            instance = visible(p, body.webhook_id).instance
        done = ctx.redrive(body.webhook_id, body.since_ms, body.rate_per_s, p.instances)
        ctx.audit(p, AuditAction.REDRIVE, redrive_target(body.webhook_id, p.instances),
                  f"redriven {done}", instance)
        return {"redriven": done}

    @app.post("/v1/webhooks/{webhook_id}/replays", response_model=m.ReplayOut,
              status_code=202, responses={409: {"model": m.Problem,
                                                "description": "this replay is running"}})
    def start_replay(p: Actor, webhook_id: m.WebhookId, body: m.ReplayIn) -> dict[str, Any]:
        """Replay the events that reached glpi.item-changes in the range into this webhook,
        as it is defined now: new deliveries with new ids, each event at most once however
        often the same replay is started. Runs in the background: read its progress with
        GET .../replays/{replay_id}."""
        found = visible(p, webhook_id)
        if body.until_ms is not None and body.until_ms <= body.since_ms:
            raise _problem(422, "until_ms must be after since_ms")
        replay_id = body.replay_id or replay_identity(
            webhook_id, str(body.since_ms), None if body.until_ms is None else str(body.until_ms))
        job = ReplayJob(webhook_id, replay_id, body.since_ms, body.until_ms, body.rate_per_s,
                        body.dry_run)
        try:
            run = ctx.replay(p, job, found.instance)
        except ReplayBusy as e:
            raise _problem(409, str(e)) from e
        return replay_out(run)

    @app.get("/v1/webhooks/{webhook_id}/replays/{replay_id}", response_model=m.ReplayOut)
    def replay_progress(p: Reader, webhook_id: m.WebhookId,
                        replay_id: Annotated[str, Path(pattern=m.REPLAY_ID)]) -> dict[str, Any]:
        """A replay started through this admin process (console or API): its progress, or
        its final count."""
        visible(p, webhook_id)
        run = ctx.replay_run(replay_id)
        if run is None or run.job.webhook_id != webhook_id:
            raise _problem(404, f"no replay {replay_id} of webhook {webhook_id} here")
        return replay_out(run)

    # -- the audit trail ---------------------------------------------------------------

    @app.get("/v1/audit", response_model=m.AuditPage)
    def audit(p: Reader, f: Annotated[m.AuditQuery, Query()]) -> dict[str, Any]:
        """Writes made through this API and the console, newest first; a token scoped to
        instances sees those on its instances."""
        where = AuditFilter(f.token, f.action, f.before_ms, f.before_id)
        return {"items": list_audit(ctx.engine, where, p.scope, f.limit)}

    # -- operational events ------------------------------------------------------------

    @app.get("/v1/operations", response_model=m.OperationsPage)
    def operations(p: Reader, f: Annotated[m.OperationsQuery, Query()]) -> dict[str, Any]:
        """webhook.disabled, delivery.dead_lettered and circuit.opened, newest first, as the
        log store keeps them; a token scoped to instances sees those of its instances."""
        return {"items": list_operations(ctx.engine, p.scope, f.webhook_id, f.before_ms,
                                         f.before_id, f.limit)}

    # -- alerts into tickets ------------------------------------------------------------

    @app.get("/v1/alert-rules", response_model=m.AlertRuleList)
    def alert_rules(p: Reader) -> dict[str, Any]:
        """The alert rules the ticketer applies (`hookstream alerts apply`), by id; a token
        scoped to instances sees those of its instances."""
        return {"items": [r.to_dict() for _, r in sorted(ctx.alert_rules().items())
                          if p.sees(r.instance)]}

    @app.get("/v1/alert-rules/{rule_id}", response_model=dict[str, Any])
    def alert_rule(p: Reader, rule_id: Annotated[str, Path(pattern=m.WEBHOOK_ID)]
                   ) -> dict[str, Any]:
        found = ctx.alert_rules().get(rule_id)
        if found is None or not p.sees(found.instance):
            raise _problem(404, f"no alert rule {rule_id}")
        return found.to_dict()

    @app.get("/v1/alerts", response_model=m.AlertPage)
    def alerts(p: Reader, f: Annotated[m.AlertsQuery, Query()]) -> dict[str, Any]:
        """Alerts the ticketer handled, the latest action first: each with its status, its
        ticket and its latest action (the log store's, from hookstream.alert-actions)."""
        if f.instance is not None and not p.sees(f.instance):
            return {"items": [], "next_cursor": None, "prev_cursor": None}
        where = AlertFilter(f.instance, f.status, f.action, f.search)
        try:
            at = None if f.cursor is None else AlertCursor.decode(f.cursor)
            page = list_alerts(ctx.engine, where, p.scope, at, f.limit, f.newer)
        except BadCursor as e:
            raise _problem(422, f"cursor: {e}") from None
        except BadFilter as e:
            raise _problem(422, str(e)) from None
        return {"items": [with_ticket_url(a) for a in page.items],
                "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor}

    @app.get("/v1/alerts/{alert_key}", response_model=m.AlertDetail)
    def alert(p: Reader, alert_key: Annotated[str, Path(pattern=m.NAME)]) -> dict[str, Any]:
        """One alert: its ticket and every action the ticketer took, oldest first."""
        found = alert_history(ctx.engine, alert_key, p.scope)
        if found is None:
            raise _problem(404, f"no alert {alert_key}")
        return {**with_ticket_url(found),
                "history": [with_ticket_url({**a, "instance": found["instance"]})
                            for a in found["history"]]}

    def with_ticket_url(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "ticket_url": ticket_url(ctx.api_url(row["instance"]), row["tickets_id"])}

    from connectors.console import mount_console  # the web console at /, on these tokens

    mount_console(app, ctx, tokens)
    return app


def replay_out(run: ReplayRun) -> dict[str, Any]:
    """A run as ReplayOut has it."""
    status, count = run.status, run.status.count
    state = ("running" if run.running else "failed" if run.error
             else "finished" if status.finished else "stopped")
    return {"replay_id": status.replay_id, "webhook_id": status.webhook_id, "state": state,
            "dry_run": status.dry_run, "done": status.done, "total": status.total,
            "read": count.read, "matched": count.matched, "replayed": count.replayed,
            "already": count.already, "skipped": count.skipped, "error": run.error}


def _fields(where: DeliveryFilter) -> dict[str, Any]:
    return {name: getattr(where, name) for name in where.__dataclass_fields__}


def _scrubbed(errors: list[str], raw: dict[str, Any]) -> list[str]:
    """Validation messages quote values (a bad URL, an unknown event); should a secret
    have been put where a value is quoted, it is masked there too."""
    secrets = [v for k in ("secret", "clientsecret")
               if isinstance(v := raw.get(k), str) and len(v) >= 4]
    out = []
    for error in errors:
        for secret in secrets:
            error = error.replace(secret, "<redacted>")
        out.append(error)
    return out
