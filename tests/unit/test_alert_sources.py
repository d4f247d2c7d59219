"""The three source formats against their producers' documented bodies, and every refusal."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from hookstream.alerting.sources import parse
from hookstream.errors import InvalidAlert
from hookstream.records import AlertEvent, Codec
from tests.conftest import FIXTURES

ALERTS = FIXTURES / "alerts"
RECEIVED_MS = 1_765_120_300_000


def ids() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"id-{next(counter)}"


def fixture(source: str) -> dict[str, Any]:
    return json.loads((ALERTS / f"{source}.json").read_bytes())  # type: ignore[no-any-return]


def read(source: str, data: Any) -> list[AlertEvent]:
    return parse(source, json.dumps(data).encode(), "glpi-a", RECEIVED_MS, ids())


def test_alertmanager_group_is_one_event_per_alert() -> None:
    events = parse("alertmanager", (ALERTS / "alertmanager.json").read_bytes(), "glpi-a",
                   RECEIVED_MS, ids())
    assert [(e.event_id, e.fingerprint, e.status) for e in events] == [
        ("id-0", "1a30ba71cca2921f", "firing"),
        ("id-1", "5f1c1d6e0b2a93c4", "firing"),
        ("id-2", "9e2d4c8a7b1f6053", "resolved"),
    ]
    first, second, resolved = events
    assert first.key() == "glpi-a:alertmanager:1a30ba71cca2921f"
    assert (first.name, first.instance, first.received_at) == ("ProbeFailure", "glpi-a",
                                                                RECEIVED_MS)
    assert first.starts_at == 1_675_688_925_828  # 2023-02-06T13:08:45.828Z
    assert first.ends_at is None  # Alertmanager's zero time
    assert second.starts_at == 1_675_685_415_739  # +01:00, nanoseconds cut to ms
    assert resolved.ends_at == 1_675_688_745_828
    assert first.labels["severity"] == "critical"
    assert first.annotations["summary"] == "BlackBox Probe Failure: https://server.example.org"
    assert first.generator_url.startswith("http://prometheus.example.org:9090/graph?")
    assert first.links == {"external_url": "http://alertmanager.example.org:9093"}


def test_grafana_documented_example() -> None:
    first, second = parse("grafana", (ALERTS / "grafana.json").read_bytes(), "glpi-a",
                          RECEIVED_MS, ids())
    assert (first.fingerprint, first.name, first.status) == ("c6eadffa33fcdf37",
                                                             "High memory usage", "firing")
    assert first.starts_at == 1_634_025_063_157  # 2021-10-12T09:51:03.157076+02:00
    assert first.ends_at is None
    assert first.links == {
        "external_url": "https://play.grafana.org/",
        "silence_url": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
                       "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
    }  # the empty dashboardURL and panelURL are left out
    assert json.loads(first.annotations["values"]) == {"B": 44.23943737541908, "C": 1}
    assert first.annotations["runbook_url"] == "https://myrunbook.com/runbook/1234"
    assert second.generator_url == "https://play.grafana.org/alerting/d1rdpdv7k/edit"


def test_grafana_value_string_and_panel_links() -> None:
    data = fixture("grafana")
    alert = data["alerts"][0]
    del alert["values"]
    alert.update(valueString="[ metric='' labels={} value=14151.33 ]",
                 dashboardURL="https://g/d/abc", panelURL="https://g/d/abc?viewPanel=2")
    [event, _] = read("grafana", data)
    assert event.annotations["value_string"] == "[ metric='' labels={} value=14151.33 ]"
    assert event.links["dashboard_url"] == "https://g/d/abc"
    assert event.links["panel_url"] == "https://g/d/abc?viewPanel=2"


def test_zabbix_problem_and_its_recovery_share_the_fingerprint() -> None:
    [problem] = read("zabbix", fixture("zabbix"))
    recovery_body = {**fixture("zabbix"), "status": "RESOLVED", "ended_at": "1765120888"}
    [recovery] = read("zabbix", recovery_body)
    assert problem.key() == recovery.key() == "glpi-a:zabbix:5417"
    assert (problem.status, recovery.status) == ("firing", "resolved")
    assert (problem.starts_at, problem.ends_at) == (1_765_120_288_000, None)
    assert recovery.ends_at == 1_765_120_888_000
    assert problem.name == "High CPU utilization (over 90% for 5m)"
    assert problem.labels == {"class": "os", "component": "cpu", "scope": "performance",
                              "host": "web-01", "severity": "High"}
    assert problem.annotations["message"].startswith("Problem started at 16:51:28")
    assert problem.generator_url.endswith("eventid=5417")


@pytest.mark.parametrize(("value", "status"), [
    ("PROBLEM", "firing"), ("1", "firing"), (1, "firing"),
    ("RESOLVED", "resolved"), ("0", "resolved"), ("OK", "resolved"),
])
def test_zabbix_status_from_event_status_or_event_value(value: Any, status: str) -> None:
    [event] = read("zabbix", {**fixture("zabbix"), "status": value})
    assert event.status == status


def test_zabbix_repeated_tags_are_joined() -> None:
    tags = [{"tag": "service", "value": "web"}, {"tag": "service", "value": "mail"}]
    [event] = read("zabbix", {**fixture("zabbix"), "tags": tags})
    assert event.labels["service"] == "web, mail"


@pytest.mark.parametrize("source", ["alertmanager", "grafana", "zabbix"])
def test_every_event_round_trips_through_the_avro_codec(source: str) -> None:
    codec = Codec()
    for event in read(source, fixture(source)):
        value, headers = codec.encode(event, "hookstream.alerts")
        assert codec.decode(value, headers, AlertEvent) == event


def am(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(fixture("alertmanager"))
    change(data)
    return data


BAD_ALERTMANAGER = [
    (am(lambda d: d.update(version="3")), "version '3': hookstream reads Alertmanager's "
                                          "webhook version 4"),
    (am(lambda d: d.update(alerts=[])), "alerts must be a non-empty list"),
    (am(lambda d: d.pop("alerts")), "alerts must be a non-empty list"),
    (am(lambda d: d["alerts"].append("x")), "alerts[3] must be an object"),
    (am(lambda d: d["alerts"][1].pop("fingerprint")),
     "alerts[1].fingerprint must be a non-empty string"),
    (am(lambda d: d["alerts"][0].update(status="pending")),
     "alerts[0].status must be firing or resolved, not 'pending'"),
    (am(lambda d: d["alerts"][0].update(labels={"a": 1})),
     "alerts[0].labels must map names to strings"),
    (am(lambda d: d["alerts"][0].update(annotations=[])),
     "alerts[0].annotations must map names to strings"),
    (am(lambda d: d["alerts"][2].update(startsAt="yesterday")),
     "alerts[2].startsAt must be an RFC 3339 time such as 2026-01-31T09:00:00Z, "
     "not 'yesterday'"),
    (am(lambda d: d["alerts"][2].update(startsAt="2023-02-06T13:08:45")),  # no offset
     "alerts[2].startsAt must be an RFC 3339 time"),
    (am(lambda d: d["alerts"][0].update(startsAt="0001-01-01T00:00:00Z")),
     "alerts[0].startsAt must be a time, not 0001-01-01T00:00:00Z"),
    (am(lambda d: d["alerts"][2].update(endsAt=5)), "alerts[2].endsAt must be an RFC 3339"),
    (am(lambda d: d["alerts"][0].update(generatorURL=None)),
     "alerts[0].generatorURL must be a string"),
]


@pytest.mark.parametrize(("data", "reason"), BAD_ALERTMANAGER)
def test_alertmanager_refusals_name_the_field(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidAlert) as info:
        read("alertmanager", data)
    assert str(info.value).startswith(reason)


def zb(**change: Any) -> dict[str, Any]:
    return {**fixture("zabbix"), **change}


BAD_ZABBIX = [
    (zb(version="2"), "version '2': hookstream reads hookstream's Zabbix body version 1"),
    (zb(event_id="{EVENT.ID}"), "event_id must be Zabbix's numeric {EVENT.ID}, not '{EVENT.ID}'"),
    (zb(status="UNKNOWN"), "status must be {EVENT.STATUS} (PROBLEM, RESOLVED) or {EVENT.VALUE}"),
    (zb(name=""), "name must be a non-empty string"),
    (zb(tags={"a": "b"}), "tags must be a list"),
    (zb(tags=[{"value": "x"}]), "tags[0] must be"),
    (zb(tags=[{"tag": "a", "value": ["x"]}]), "tags[0].value must be a string"),
    (zb(started_at="{EVENT.DATE}"), "started_at must be Unix seconds, not '{EVENT.DATE}'"),
    (zb(started_at=None), "started_at must be Unix seconds"),
    (zb(ended_at=-5), "ended_at must be Unix seconds"),
    (zb(host={"x": 1}), "host must be a string"),
    (zb(url=[]), "url must be a string"),
]


@pytest.mark.parametrize(("data", "reason"), BAD_ZABBIX)
def test_zabbix_refusals_name_the_field(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidAlert) as info:
        read("zabbix", data)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[1, 2]", "body must be a JSON object"),
])
def test_bodies_that_are_not_json_objects(body: bytes, reason: str) -> None:
    for source in ("alertmanager", "grafana", "zabbix"):
        with pytest.raises(InvalidAlert, match=reason):
            parse(source, body, "glpi-a", RECEIVED_MS, ids())


def test_grafana_refuses_another_version_and_an_unknown_source_is_refused() -> None:
    with pytest.raises(InvalidAlert, match="Grafana's webhook contact point version 1"):
        read("grafana", {**fixture("grafana"), "version": "4"})
    with pytest.raises(InvalidAlert, match="unknown source 'nagios'"):
        read("nagios", fixture("grafana"))
