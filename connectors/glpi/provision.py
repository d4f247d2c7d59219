"""`hookstream glpi provision`: the GLPI webhooks that feed the ingest endpoint.

One native webhook per (itemtype, event), at `{ingest_url}/glpi/{instance}/{itemtype}`,
signed with the instance's secret, default payload, active, for the root entity and
every entity below it. A GLPI webhook is recognised as provisioned by its URL and event,
so a second run finds every one and changes nothing. GLPI's API never returns a
webhook's secret (it is encrypted at rest), so an existing webhook's secret cannot be
compared: it is written on creation, and again only with `set_secret` (after rotating
the instance's secret).

GLPI sends queued webhooks from its `queuedwebhook` automatic action, 50 rows a run by
default; provisioning raises that batch size and sets the action's frequency to GLPI's
minimum, and reports what GLPI's API refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.glpi.client import GlpiApiError, GlpiClient

ITIL = ("Ticket", "Change", "Problem", "TicketTask", "ChangeTask", "ProblemTask",
        "ITILFollowup", "ITILSolution", "TicketValidation", "ChangeValidation")
ASSETS = ("Computer", "Monitor", "NetworkEquipment", "Peripheral", "Phone", "Printer",
          "Software", "Rack", "Enclosure", "PDU", "PassiveDCEquipment", "Unmanaged", "Cable")
DEFAULT_ITEMTYPES = ITIL + ASSETS
EVENTS = ("new", "update", "delete")
CRON_NAME = "queuedwebhook"
CRON_MIN_FREQUENCY_S = 60  # GLPI's shortest automatic action frequency (one minute)
CRON_BATCH = 1000  # rows per run; GLPI's default is 50


@dataclass(frozen=True, slots=True)
class Action:
    """One change to make in GLPI: create or update a webhook (`glpi_id` when updating)."""

    verb: str  # create, update, unchanged
    itemtype: str
    event: str
    fields: dict[str, Any]
    glpi_id: int | None = None
    changed: tuple[str, ...] = ()


@dataclass
class Report:
    actions: list[Action] = field(default_factory=list)
    cron: list[str] = field(default_factory=list)  # what was done to the cron task
    refused: list[str] = field(default_factory=list)  # what GLPI's API did not allow


def wanted(instance: str, ingest_url: str, itemtypes: Sequence[str]) -> list[dict[str, Any]]:
    """The webhook fields hookstream wants in GLPI (without the secret)."""
    base = ingest_url.rstrip("/")
    return [
        {
            "name": f"hookstream {itemtype} {event}",
            "itemtype": itemtype,
            "event": event,
            "url": f"{base}/glpi/{instance}/{itemtype}",
            "http_method": "post",
            "use_default_payload": 1,
            "is_active": 1,
            "entities_id": 0,
            "is_recursive": 1,
        }
        for itemtype in itemtypes
        for event in EVENTS
    ]


def plan(existing: Iterable[dict[str, Any]], desired: Sequence[dict[str, Any]]) -> list[Action]:
    """What to create and update (pure): GLPI's webhooks matched by URL and event."""
    by_target = {(str(w.get("url", "")), str(w.get("event", ""))): w for w in existing}
    actions = []
    for fields in desired:
        current = by_target.get((fields["url"], fields["event"]))
        if current is None:
            actions.append(Action("create", fields["itemtype"], fields["event"], fields))
            continue
        changed = tuple(k for k, v in fields.items() if str(current.get(k)) != str(v))
        actions.append(Action("update" if changed else "unchanged", fields["itemtype"],
                              fields["event"], fields, int(current["id"]), changed))
    return actions


def table(actions: Sequence[Action]) -> str:
    """The plan as a fixed-width table for --dry-run."""
    lines = [f"{'action':<10} {'itemtype':<20} {'event':<7} {'glpi id':>7}  url / changes"]
    for a in actions:
        detail = a.fields["url"] if a.verb == "create" else ", ".join(a.changed) or "-"
        lines.append(f"{a.verb:<10} {a.itemtype:<20} {a.event:<7} "
                     f"{a.glpi_id if a.glpi_id is not None else '':>7}  {detail}")
    return "\n".join(lines)


def provision(
    client: GlpiClient,
    ingest_url: str,
    secret: str,
    itemtypes: Sequence[str] = DEFAULT_ITEMTYPES,
    dry_run: bool = False,
    set_secret: bool = False,
) -> Report:
    """Create or update the webhooks, then tune the cron task; GlpiApiError stops it."""
    desired = wanted(client.instance, ingest_url, itemtypes)
    report = Report(plan(client.webhooks(), desired))
    if set_secret:
        report.actions = [
            Action("update", a.itemtype, a.event, a.fields, a.glpi_id, (*a.changed, "secret"))
            if a.verb == "unchanged" else a
            for a in report.actions
        ]
    if dry_run:
        return report
    for action in report.actions:
        if action.verb == "create":
            client.add_item("Webhook", {**action.fields, "secret": secret})
        elif action.verb == "update" and action.glpi_id is not None:
            update = {k: action.fields[k] for k in action.changed if k in action.fields}
            if set_secret:
                update["secret"] = secret
            client.update_item("Webhook", action.glpi_id, update)
    _tune_cron(client, report)
    return report


def _tune_cron(client: GlpiClient, report: Report) -> None:
    tasks = [t for t in client.list_items("CronTask") if t.get("name") == CRON_NAME]
    if not tasks:
        report.refused.append(f"automatic action {CRON_NAME} not found through the API")
        return
    task = tasks[0]
    want = {"frequency": CRON_MIN_FREQUENCY_S, "param": CRON_BATCH}
    change = {k: v for k, v in want.items() if str(task.get(k)) != str(v)}
    if not change:
        report.cron.append(f"{CRON_NAME}: already every {CRON_MIN_FREQUENCY_S}s, "
                           f"{CRON_BATCH} rows a run")
        return
    try:
        client.update_item("CronTask", int(task["id"]), change)
    except GlpiApiError as e:
        report.refused.append(f"{CRON_NAME} {', '.join(change)}: {e.code} {e.message}")
        return
    report.cron.append(f"{CRON_NAME}: " + ", ".join(f"{k} {task.get(k)} -> {v}"
                                                     for k, v in change.items()))
