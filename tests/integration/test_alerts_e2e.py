"""Alerts into tickets end to end, with no loops (issue 24), on the real broker against the
fake GLPI: `hookstream run alerts`, `run ticketer`, `run poller`, `run processor` and
`run delivery` as processes, and a Slack-style receiver on loopback.

An Alertmanager firing alert opens one ticket; twenty repeats open none, with the ticketer
SIGKILLed once it has handled some of the first ten (in practice all ten: repeats need no
GLPI call) and restarted after the other ten are posted, so that the restart resumes from
the offsets and the ticket map the killed process left (a kill during a GLPI call is
test_ticketer.py's); a resolved alert adds a followup and a solution, which solves the
ticket. The ticket-created event, polled from GLPI, reaches the receiver
through the webhook that does not skip integration users only; a person's ticket reaches
it through both.

The ticketer acts as the instance's API user, which is also the poller's. By default
(`poller_skip_own_changes`) the poller produces no event at all for a change made by its
own user alone, so the ticket the ticketer opens would reach no webhook whatever its
`skip_integration_users`. This test runs the poller with `poller_skip_own_changes=false`
so that the event is produced naming that user (`changed_by`), and it is the webhook's
`skip_integration_users` alone that keeps it from one of the two webhooks.

The ticketer's consumer has a session timeout of 6 s (`kafka_config`; the broker's
minimum) so that its restart gets its partitions back within seconds of the SIGKILL
rather than librdkafka's default 45 s.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hookstream.alerting.tickets import ticket_marker
from hookstream.config import Settings
from hookstream.control import instances
from hookstream.io import create_topics
from hookstream.records import ALERT_ACTIONS, ALERTS, AlertEvent, TicketAction
from tests.conftest import FIXTURES
from tests.fake_glpi import API_USER_ID, RunningGlpiApi
from tests.fake_glpi_items import HUMAN_USER, SOLVED, FakeGlpiItems
from tests.integration.harness import apply_webhooks, cli_env, read, wait_until
from tests.integration.test_alerts_receiver import RunningAlerts, running_alerts
from tests.receiver import Receiver

REPO = Path(__file__).resolve().parents[2]
APP, USER = "app-token-1234", "user-token-5678"
TOKEN = "am-token-0123456789abcdef"
ALL, SKIPS = "/slack/all", "/slack/skips-integration-users"
RULE = {
    "id": "http-checks", "instance": "glpi-a", "match": {"labels": {"job": "http_checks"}},
    "entities_id": 0, "type": "incident", "requesttypes_id": 8,
    "urgency": {"label": "severity", "values": {"critical": 5, "warning": 3}},
    "name": "[{{ alert.labels.severity|upper }}] {{ alert.name }} on {{ alert.labels.instance }}",
    "content": "{{ alert.annotations.summary }}",
    "on_resolved": {"solve": True, "solution": "{{ alert.name }} resolved"},
}
SLACK_PAYLOAD = '{"text": "New ticket #{{ item.id }}: {{ item.name }}", "ticket": {{ item.id }}}'


def notification(status: str) -> bytes:
    """Alertmanager's webhook body (tests/fixtures/alerts/alertmanager.json) with its first
    alert alone, firing or resolved."""
    body = json.loads((FIXTURES / "alerts" / "alertmanager.json").read_text())
    alert = copy.deepcopy(body["alerts"][0])
    alert["status"] = body["status"] = status
    if status == "resolved":
        alert["endsAt"] = "2023-02-06T13:30:00Z"
    body["alerts"] = [alert]
    return json.dumps(body).encode()


FINGERPRINT = json.loads(notification("firing"))["alerts"][0]["fingerprint"]


def post(alerts: RunningAlerts, status: str, instance: str = "glpi-a") -> str:
    """One notification of one alert; its event id."""
    answer = httpx.post(f"{alerts.url}/alerts/{instance}/alertmanager",
                        content=notification(status),
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    [event_id] = answer.json()["event_ids"]
    return str(event_id)


@dataclass
class Components:
    """The hookstream processes, each logging to its own file."""

    settings: Settings
    logs: Path
    running: dict[str, subprocess.Popen[bytes]]

    def start(self, name: str, *args: str, **extra: str) -> None:
        env = cli_env(self.settings, **extra)
        env.pop("HOOKSTREAM_CONFIG", None)
        with (self.logs / f"{name}.log").open("ab") as out:
            self.running[name] = subprocess.Popen(
                [sys.executable, "-m", "hookstream.cli", "run", name, *args], cwd=REPO,
                env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def stop_all(self) -> None:
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def tails(self) -> str:
        """The end of every log, for a failing assertion's message."""
        return "".join(f"\n--- {log.name}:\n{log.read_text(errors='replace')[-1500:]}"
                       for log in sorted(self.logs.glob("*.log")))


@dataclass
class Pipeline:
    alerts: RunningAlerts
    components: Components


@dataclass
class Stack:
    settings: Settings
    glpi: FakeGlpiItems
    receiver: Receiver
    pipeline: Pipeline


def e2e_settings(settings: Settings) -> Settings:
    """Fast components; the poller produces the events of its own user's changes too (the
    module's docstring says why)."""
    return replace(settings, ticketer_rate_per_s=100.0, ticketer_backoff_max_s=1.0,
                   poller_itemtypes=("Ticket",), poller_interval_s=0.5,
                   poller_backoff_max_s=2.0, poller_skip_own_changes=False)


def apply_instance_and_rule(settings: Settings, tmp_path: Path, instance: dict[str, Any],
                            rule: dict[str, Any]) -> None:
    """The instance (name, API and tokens, integration users) with Alertmanager's bearer
    token, and the rule, applied through `hookstream alerts apply`."""
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({**instance, "alerts": {"alertmanager": {"auth": "bearer",
                                                                           "secret": TOKEN}}}))
    instances.apply_instances(settings, path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [rule]}))
    applied = subprocess.run(
        [sys.executable, "-m", "hookstream.cli", "alerts", "apply", "-f", str(rules)], cwd=REPO,
        env=cli_env(settings), capture_output=True, text=True, timeout=120, check=False)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [f"{rule['id']} v1: created"]


@contextmanager
def running_pipeline(settings: Settings, tmp_path: Path, instance: dict[str, Any],
                     rule: dict[str, Any], receiver: Receiver) -> Iterator[Pipeline]:
    """The instance, the rule and the two Slack-style webhooks (ALL, SKIPS) applied; run
    alerts, ticketer, poller, processor and delivery running."""
    apply_instance_and_rule(settings, tmp_path, instance, rule)
    apply_webhooks(settings, tmp_path, *[
        {"id": hook_id, "instance": instance["name"], "url": receiver.url(path),
         "use_default_payload": False, "payload": SLACK_PAYLOAD, "entities_id": 0,
         "allowed_networks": ["127.0.0.0/8"], **extra}
        for hook_id, path, extra in (("slack-all", ALL, {}),
                                     ("slack-skips", SKIPS, {"skip_integration_users": True}))
    ])
    logs = tmp_path / "logs"
    logs.mkdir()
    components = Components(settings, logs, {})
    try:
        with running_alerts(settings, logs / "alerts.log") as alerts:
            start_ticketer(components)
            components.start("poller", "--instance", instance["name"])
            components.start("processor")
            components.start("delivery")
            yield Pipeline(alerts, components)
    finally:
        components.stop_all()


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    fast = e2e_settings(settings)
    create_topics(fast)
    glpi = FakeGlpiItems(APP, USER)
    glpi.add("Entity", id=0, name="Root entity", entities_id=None, completename="Root entity")
    glpi.add("RequestType", id=8, name="Alerting")  # the rule's request source, polled
    with RunningGlpiApi(glpi) as api_url, Receiver() as receiver:
        instance = {"name": "glpi-a", "api_url": api_url, "app_token": APP, "user_token": USER,
                    "integration_users": [API_USER_ID]}
        with running_pipeline(fast, tmp_path, instance, RULE, receiver) as pipeline:
            yield Stack(fast, glpi, receiver, pipeline)


def start_ticketer(components: Components) -> None:
    components.start("ticketer", kafka_config="session.timeout.ms=6000")


def alert_tickets(glpi: FakeGlpiItems) -> list[dict[str, Any]]:
    return [t for t in list(glpi.items["Ticket"].values()) if "hookstream-alert-" in t["content"]]


def actions(settings: Settings) -> list[TicketAction]:
    return read(settings, ALERT_ACTIONS, TicketAction, lambda a: a.fingerprint == FINGERPRINT)


def handled(settings: Settings) -> set[str]:
    """The alert events the ticketer recorded an action for."""
    return {a.alert_event_id for a in actions(settings)}


def repeat_across_a_ticketer_kill(pipeline: Pipeline, settings: Settings, first: str,
                                  tickets_id: int, instance: str = "glpi-a") -> None:
    """Twenty repeats of the firing alert whose first event (`first`) opened `tickets_id`:
    the ticketer SIGKILLed once it has handled some of the first ten, restarted after the
    other ten are posted; every repeat handled, none opening a ticket."""
    alerts, components = pipeline.alerts, pipeline.components
    repeats = [post(alerts, "firing", instance) for _ in range(10)]
    assert wait_until(lambda: handled(settings) & set(repeats), 60), \
        f"the ticketer handled none of the first ten repeats{components.tails()}"
    components.kill("ticketer")
    repeats += [post(alerts, "firing", instance) for _ in range(10)]
    start_ticketer(components)
    assert wait_until(lambda: handled(settings) >= {first, *repeats}, 120), \
        f"the restarted ticketer did not handle every repeat{components.tails()}"
    done = actions(settings)  # an event handled again after the kill may be recorded twice
    assert [a.action for a in done].count("opened") == 1, [a.action for a in done]
    assert {(a.action, a.tickets_id) for a in done} == {("opened", tickets_id),
                                                        ("unchanged", tickets_id)}


def tickets_announced(receiver: Receiver, path: str, tickets_id: int) -> int:
    return sum(1 for r in receiver.requests(path) if json.loads(r.body)["ticket"] == tickets_id)


def test_an_alert_opens_one_ticket_repeats_none_its_resolution_solves_it_and_no_loop(
        stack: Stack) -> None:
    settings, glpi, receiver = stack.settings, stack.glpi, stack.receiver
    alerts, components = stack.pipeline.alerts, stack.pipeline.components

    # 1. a firing alert: one ticket, with the rule's fields and the event's marker
    first = post(alerts, "firing")
    assert wait_until(lambda: alert_tickets(glpi), 120), \
        f"no ticket opened within 120 s{components.tails()}"
    [ticket] = alert_tickets(glpi)
    [event] = read(settings, ALERTS, AlertEvent, lambda e: e.event_id == first)
    assert ticket["name"] == "[CRITICAL] ProbeFailure on https://server.example.org"
    assert ticket["content"] == (
        f"BlackBox Probe Failure: https://server.example.org\n\n{ticket_marker(event)}")
    assert (ticket["urgency"], ticket["type"], ticket["requesttypes_id"],
            ticket["entities_id"]) == (5, 1, 8, 0)
    assert ticket["users_id_lastupdater"] == API_USER_ID

    # 2. twenty repeats, the ticketer SIGKILLed among them and restarted: no second ticket
    repeat_across_a_ticketer_kill(stack.pipeline, settings, first, ticket["id"])
    assert [t["id"] for t in alert_tickets(glpi)] == [ticket["id"]], \
        "a repeat of a firing alert opened another ticket"
    assert not glpi.items["ITILFollowup"] and ticket["status"] != SOLVED

    # 3. the ticket's `new` event reaches only the webhook that does not skip its user...
    assert wait_until(lambda: tickets_announced(receiver, ALL, ticket["id"]), 120), \
        f"the alert's ticket never reached {ALL}{components.tails()}"
    announced_at = time.monotonic()
    # ...and a person's ticket reaches both (the skipping webhook does send)
    glpi.tick()
    by_person = glpi.create("Ticket", by=HUMAN_USER, name="Printer jammed", content="paper",
                            entities_id=0, status=1)
    assert wait_until(lambda: tickets_announced(receiver, ALL, by_person)
                      and tickets_announced(receiver, SKIPS, by_person), 120), \
        f"the person's ticket did not reach both webhooks{components.tails()}"
    time.sleep(max(0.0, announced_at + 5 - time.monotonic()))  # room for a late request
    sent = {(r.path, json.loads(r.body)["ticket"]) for r in receiver.requests()}
    assert (SKIPS, ticket["id"]) not in sent, \
        "the webhook with skip_integration_users sent the ticket the integration user opened"
    assert sent == {(ALL, ticket["id"]), (ALL, by_person), (SKIPS, by_person)}, sent
    assert len(receiver.requests()) == 3, \
        f"an event was sent twice: {[(r.path, r.body) for r in receiver.requests()]}"
    [request] = [r for r in receiver.requests(ALL) if json.loads(r.body)["ticket"] == ticket["id"]]
    assert json.loads(request.body)["text"] == f"New ticket #{ticket['id']}: {ticket['name']}"

    # 4. the alert resolves: a followup and a solution, the ticket solved
    glpi.tick()
    resolved = post(alerts, "resolved")
    assert wait_until(lambda: resolved in handled(settings), 120), \
        f"the resolved alert was not handled{components.tails()}"
    assert glpi.items["Ticket"][ticket["id"]]["status"] == SOLVED
    [followup] = glpi.items["ITILFollowup"].values()
    [solution] = glpi.items["ITILSolution"].values()
    assert (followup["items_id"], solution["items_id"]) == (ticket["id"], ticket["id"])
    assert solution["content"] == "ProbeFailure resolved"
    assert [a.action for a in actions(settings) if a.alert_event_id == resolved] == ["solved"]
    assert len(alert_tickets(glpi)) == 1
