"""`hookstream run ticketer` on the real broker against the fake GLPI: one ticket per alert."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.ticketer import Ticketer
from hookstream.alerting.tickets import ticket_marker
from hookstream.config import Settings
from hookstream.control import alert_rules, instances
from hookstream.io import create_topics, metrics, read_all
from hookstream.io.tables import TableFollower
from hookstream.records import (
    ALERT_ACTIONS,
    ALERT_RULES,
    ALERT_TICKETS,
    ALERTS,
    ALERTS_DLQ,
    INSTANCES,
    AlertEvent,
    AlertTicket,
    Codec,
    TicketAction,
    header,
)
from tests.fake_glpi import RunningGlpiApi
from tests.fake_glpi_items import FakeGlpiItems
from tests.integration.harness import cli_env, publish, read, wait_until

APP, USER = "app-token-1234", "user-token-5678"
T0 = 1_765_000_000_000
RULES = [
    {"id": "reopen", "instance": "glpi-a", "order": 1, "match": {"labels": {"team": "a"}},
     "entities_id": 0, "type": "incident", "groups_id_assign": 6, "requesttypes_id": 8,
     "urgency": {"label": "severity", "values": {"critical": 5, "warning": 3}},
     "name": "[{{ alert.labels.severity }}] {{ alert.name }}",
     "content": "{{ alert.annotations.summary }}",
     "on_resolved": {"solve": True, "solution": "{{ alert.name }} resolved"}},
    {"id": "new", "instance": "glpi-a", "order": 2, "match": {"labels": {"team": "b"}},
     "name": "{{ alert.name }}", "content": "c", "on_refire": "new"},
    {"id": "quiet", "instance": "glpi-a", "order": 3, "match": {"labels": {"team": "q"}},
     "name": "{{ alert.name }}", "content": "c", "repeat_followup_after_s": 60},
]


def alert(fingerprint: str, status: str = "firing", team: str = "a", at_s: float = 0,
          **changes: Any) -> AlertEvent:
    base = AlertEvent(event_id=uuid.uuid4().hex, instance="glpi-a", source="alertmanager",
                      fingerprint=fingerprint, status=status, name="DiskFull",
                      starts_at=T0, received_at=T0 + int(at_s * 1000),
                      labels={"severity": "critical", "team": team},
                      annotations={"summary": "disk <full> & more"})
    return replace(base, **changes)


@pytest.fixture
def glpi() -> Iterator[FakeGlpiItems]:
    api = FakeGlpiItems(APP, USER)
    with RunningGlpiApi(api):
        yield api


@pytest.fixture
def ready(settings: Settings, tmp_path: Path, glpi: FakeGlpiItems) -> Settings:
    """Topics, the instance and the rules published (through `alerts apply`'s code)."""
    create_topics(settings)
    path = tmp_path / "instances.yaml"
    path.write_text(yaml.safe_dump({"name": "glpi-a", "api_url": glpi.api_url,
                                    "app_token": APP, "user_token": USER}))
    instances.apply_instances(settings, path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": RULES}))
    applied = alert_rules.apply_rules(settings, rules)
    assert [state for _, state in applied] == ["created"] * 3
    return replace(settings, ticketer_rate_per_s=1000.0, ticketer_backoff_max_s=1.0)


class Running:
    """The ticketer in this process, stepped by the test."""

    def __init__(self, settings: Settings):
        self.ticketer = Ticketer(settings)
        self.table = TableFollower(settings, [settings.topic(ALERT_RULES),
                                              settings.topic(INSTANCES)],
                                   self.ticketer.apply_table)
        self.table.catch_up()
        self.ticketer.start()

    def until(self, condition: Callable[[], Any], timeout_s: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.table.poll(0.0)
            self.ticketer.step(0.2)
            if found := condition():
                return found
        return condition()

    def close(self) -> None:
        self.ticketer.close()
        self.table.close()


@pytest.fixture
def running(ready: Settings) -> Iterator[Running]:
    ticketer = Running(ready)
    try:
        yield ticketer
    finally:
        ticketer.close()


def actions(settings: Settings, fingerprint: str | None = None) -> list[str]:
    found = read(settings, ALERT_ACTIONS, TicketAction,
                 lambda a: fingerprint is None or a.fingerprint == fingerprint)
    return [a.action for a in found]


def handled(settings: Settings) -> set[str]:
    """The alert events with an action recorded (a crash may record one twice)."""
    return {a.alert_event_id for a in read(settings, ALERT_ACTIONS, TicketAction)}


def tickets(glpi: FakeGlpiItems) -> list[dict[str, Any]]:
    return [t for t in glpi.items["Ticket"].values() if "hookstream-alert-" in t["content"]]


def count(family: Any, *labels: str) -> float:
    return float(family.labels(*labels)._value.get())


def test_one_ticket_twenty_repeats_none_and_resolved_solves_it(
        ready: Settings, running: Running, glpi: FakeGlpiItems) -> None:
    opened_before = count(metrics.TICKETER_ACTIONS, "glpi-a", "opened")
    first = alert("f1")
    publish(ready, [first], ALERTS)
    assert running.until(lambda: len(actions(ready, "f1")) == 1)
    [ticket] = tickets(glpi)
    assert ticket["name"] == "[critical] DiskFull"
    assert ticket["content"] == f"disk &#60;full&#62; &#38; more\n\n{ticket_marker(first)}"
    assert (ticket["urgency"], ticket["status"], ticket["requesttypes_id"]) == (5, 2, 8)
    assert [g["groups_id"] for g in glpi.items["Group_Ticket"].values()
            if g["tickets_id"] == ticket["id"] and g["type"] == 2] == [6]
    publish(ready, [alert("f1", at_s=i) for i in range(1, 21)], ALERTS)
    assert running.until(lambda: len(actions(ready, "f1")) == 21)
    assert len(tickets(glpi)) == 1 and not glpi.items["ITILFollowup"]
    publish(ready, [alert("f1", status="resolved", at_s=30)], ALERTS)
    assert running.until(lambda: len(actions(ready, "f1")) == 22)
    assert actions(ready, "f1") == ["opened", *["unchanged"] * 20, "solved"]
    assert glpi.items["Ticket"][ticket["id"]]["status"] == 5
    [followup] = glpi.items["ITILFollowup"].values()
    [solution] = glpi.items["ITILSolution"].values()
    assert followup["items_id"] == solution["items_id"] == ticket["id"]
    assert solution["content"] == "DiskFull resolved"
    entries = read(ready, ALERT_TICKETS, AlertTicket)
    assert [(e.tickets_id, e.state) for e in entries] == [(ticket["id"], "open"),
                                                          (ticket["id"], "solved")]
    assert count(metrics.TICKETER_ACTIONS, "glpi-a", "opened") == opened_before + 1


def test_a_repeat_after_the_quiet_period_adds_one_followup(
        ready: Settings, running: Running, glpi: FakeGlpiItems) -> None:
    firing = [alert("q1", team="q", at_s=s) for s in (0, *range(1, 21), 61, 62)]
    publish(ready, firing, ALERTS)
    assert running.until(lambda: len(actions(ready, "q1")) == len(firing))
    assert actions(ready, "q1") == ["opened", *["unchanged"] * 20, "followup", "unchanged"]
    assert len(tickets(glpi)) == 1 and len(glpi.items["ITILFollowup"]) == 1


def test_a_refire_reopens_or_opens_anew_as_the_rule_says(
        ready: Settings, running: Running, glpi: FakeGlpiItems) -> None:
    for fingerprint, team in (("r1", "a"), ("n1", "b")):
        publish(ready, [alert(fingerprint, team=team), alert(fingerprint, "resolved", team, 10),
                        alert(fingerprint, team=team, at_s=20)], ALERTS)
    assert running.until(lambda: len(actions(ready)) == 6)
    assert actions(ready, "r1") == ["opened", "solved", "reopened"]
    assert actions(ready, "n1") == ["opened", "solved", "opened"]
    by_rule = {(t["name"], t["status"]) for t in tickets(glpi)}
    assert sorted(by_rule) == [("DiskFull", 1), ("DiskFull", 5), ("[critical] DiskFull", 2)]


def test_a_glpi_that_is_down_delays_the_ticket_and_loses_none(
        ready: Settings, running: Running, glpi: FakeGlpiItems) -> None:
    down_before = count(metrics.TICKETER_GLPI_UNAVAILABLE, "glpi-a")
    glpi.unavailable = True
    publish(ready, [alert("d1"), alert("d2", team="b")], ALERTS)
    assert running.until(lambda: count(metrics.TICKETER_GLPI_UNAVAILABLE, "glpi-a")
                         >= down_before + 2)
    assert not tickets(glpi) and actions(ready) == []
    glpi.unavailable = False
    assert running.until(lambda: len(tickets(glpi)) == 2)
    assert sorted(actions(ready)) == ["opened", "opened"]


def test_a_refused_ticket_goes_to_the_dlq_with_glpis_message(
        ready: Settings, running: Running, glpi: FakeGlpiItems) -> None:
    dlq_before = count(metrics.TICKETER_DLQ, "glpi-a")
    glpi.read_only.add("Ticket")
    refused = alert("x1")
    publish(ready, [refused], ALERTS)
    assert running.until(lambda: actions(ready, "x1") == ["refused"])
    [action] = read(ready, ALERT_ACTIONS, TicketAction)
    assert action.message.startswith("ERROR_GLPI_ADD: You don't have permission")
    [msg] = list(read_all(ready, ready.topic(ALERTS_DLQ), timeout_s=10))
    assert Codec().decode(msg.value(), msg.headers(), AlertEvent) == refused
    assert header(msg.headers(), "hookstream-glpi-code") == b"ERROR_GLPI_ADD"
    assert header(msg.headers(), "hookstream-rule") == b"reopen"
    assert b"permission" in (header(msg.headers(), "hookstream-error") or b"")
    assert not tickets(glpi) and count(metrics.TICKETER_DLQ, "glpi-a") == dlq_before + 1
    assert read(ready, ALERT_TICKETS, AlertTicket) == []


def test_a_ticket_opened_before_a_crash_is_found_by_its_marker(
        ready: Settings, running: Running, glpi: FakeGlpiItems) -> None:
    """GLPI answered, then the ticketer died before writing the map: the retry finds it."""
    firing = alert("c1")
    earlier = glpi.create("Ticket", name="DiskFull", status=2,
                          content=f"disk\n\n{ticket_marker(firing)}")
    publish(ready, [firing], ALERTS)
    assert running.until(lambda: actions(ready, "c1") == ["opened"])
    assert [t["id"] for t in tickets(glpi)] == [earlier]
    [entry] = read(ready, ALERT_TICKETS, AlertTicket)
    assert entry.tickets_id == earlier


def test_killed_mid_stream_the_ticketer_opens_no_ticket_twice(
        ready: Settings, glpi: FakeGlpiItems) -> None:
    """SIGKILL while GLPI holds a call, then a restart: every alert has exactly one ticket."""
    fingerprints = [f"k{i}" for i in range(40)]
    publish(ready, [a for f in fingerprints for a in (alert(f), alert(f, at_s=1))], ALERTS)
    glpi.searches_allowed = 15  # the 16th lookup waits: the ticketer is held mid-stream
    command = [sys.executable, "-m", "hookstream.cli", "run", "ticketer"]
    # the broker's least session timeout: the killed member's partitions go to the restarted
    # one after 6 s, not librdkafka's default 45 s
    env = cli_env(ready, kafka_config="session.timeout.ms=6000")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: glpi.calls_to("search") > 15, timeout_s=120)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()
    held = len(tickets(glpi))
    glpi.searches_allowed = None
    second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: len(handled(ready)) == 2 * len(fingerprints), timeout_s=180)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    markers = [t["content"].rsplit("\n", 1)[-1] for t in tickets(glpi)]
    assert len(markers) == len(set(markers)) == len(fingerprints)
    assert 0 < held < len(fingerprints)  # the kill came mid-stream
    entries = {e.key(): e for e in read(ready, ALERT_TICKETS, AlertTicket)}
    assert len(entries) == len(fingerprints)
