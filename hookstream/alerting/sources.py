"""The three source formats read into AlertEvents, one event per alert.

    alertmanager  Prometheus Alertmanager's webhook_config body, version 4
    grafana       Grafana unified alerting's webhook contact point, version 1
    zabbix        hookstream's own JSON body for Zabbix's webhook media type, version 1
                  (README, "Receiving alerts": the media type's script sends it)

`parse(source, body, instance, received_at_ms, new_id)` is pure: the receive time and the
event ids are arguments. A body that is not its source's format raises InvalidAlert whose
message (the HTTP 400 body) names the first problem, e.g. `alerts[2].startsAt ...`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from hookstream.errors import InvalidAlert
from hookstream.records.alerts import AlertEvent, AlertSource, AlertStatus

# Alertmanager's (and Grafana's) "not known" time: endsAt of an alert still firing
ZERO_TIME = "0001-01-01T00:00:00Z"
# Grafana's per-alert links, as AlertEvent.links keys
GRAFANA_LINKS = {"silenceURL": "silence_url", "dashboardURL": "dashboard_url",
                 "panelURL": "panel_url", "imageURL": "image_url"}
# Zabbix's {EVENT.STATUS} and {EVENT.VALUE} spellings (README's media type sends either)
ZABBIX_STATUS = {"problem": AlertStatus.FIRING, "1": AlertStatus.FIRING,
                 "resolved": AlertStatus.RESOLVED, "ok": AlertStatus.RESOLVED,
                 "0": AlertStatus.RESOLVED}
ZABBIX_EVENT_ID = re.compile(r"^[0-9]{1,20}$")  # an unexpanded "{EVENT.ID}" is refused

Fields = dict[str, Any]  # AlertEvent's fields but the ids, instance, source and receive time


def parse(
    source: str, body: bytes, instance: str, received_at_ms: int, new_id: Callable[[], str]
) -> list[AlertEvent]:
    """Every alert of one notification body, each its own AlertEvent (InvalidAlert if not)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidAlert(f"body is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise InvalidAlert("body must be a JSON object")
    match source:
        case AlertSource.ALERTMANAGER:
            alerts = list(_alertmanager(data))
        case AlertSource.GRAFANA:
            alerts = list(_grafana(data))
        case AlertSource.ZABBIX:
            alerts = [_zabbix(data)]
        case _:
            raise InvalidAlert(f"unknown source {source!r}")
    return [
        AlertEvent(event_id=new_id(), instance=instance, source=source,
                   received_at=received_at_ms, **fields)
        for fields in alerts
    ]


def _alertmanager(data: dict[str, Any]) -> Iterator[Fields]:
    _version(data, "4", "Alertmanager's webhook")
    links = _links(data, {"externalURL": "external_url"})
    for where, alert in _alerts(data):
        yield _prometheus_style(alert, where, links)


def _grafana(data: dict[str, Any]) -> Iterator[Fields]:
    _version(data, "1", "Grafana's webhook contact point")
    group_links = _links(data, {"externalURL": "external_url"})
    for where, alert in _alerts(data):
        fields = _prometheus_style(alert, where, {**group_links, **_links(alert, GRAFANA_LINKS)})
        annotations = fields["annotations"]
        if isinstance(alert.get("valueString"), str) and alert["valueString"]:
            annotations.setdefault("value_string", alert["valueString"])
        if isinstance(alert.get("values"), dict) and alert["values"]:
            annotations.setdefault("values", json.dumps(alert["values"], sort_keys=True))
        yield fields


def _prometheus_style(alert: dict[str, Any], where: str, links: dict[str, str]) -> Fields:
    """An alert as Alertmanager (and Grafana, which embeds it) writes one."""
    fingerprint = alert.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise InvalidAlert(f"{where}.fingerprint must be a non-empty string")
    labels = _string_map(alert.get("labels", {}), f"{where}.labels")
    generator_url = alert.get("generatorURL", "")
    if not isinstance(generator_url, str):
        raise InvalidAlert(f"{where}.generatorURL must be a string")
    starts_at = _rfc3339_ms(alert.get("startsAt"), f"{where}.startsAt")
    if starts_at is None:
        raise InvalidAlert(f"{where}.startsAt must be a time, not {ZERO_TIME}")
    return {
        "fingerprint": fingerprint,
        "status": _status(alert.get("status"), f"{where}.status"),
        "name": labels.get("alertname", ""),
        "starts_at": starts_at,
        "ends_at": _rfc3339_ms(alert.get("endsAt", ZERO_TIME), f"{where}.endsAt"),
        "labels": labels,
        "annotations": _string_map(alert.get("annotations", {}), f"{where}.annotations"),
        "generator_url": generator_url,
        "links": links,
    }


def _zabbix(data: dict[str, Any]) -> Fields:
    _version(data, "1", "hookstream's Zabbix body")
    event_id = str(data.get("event_id", ""))
    if not ZABBIX_EVENT_ID.match(event_id):
        raise InvalidAlert(f"event_id must be Zabbix's numeric {{EVENT.ID}}, not {event_id[:40]!r}")
    status = ZABBIX_STATUS.get(str(data.get("status", "")).lower())
    if status is None:
        raise InvalidAlert("status must be {EVENT.STATUS} (PROBLEM, RESOLVED) "
                           "or {EVENT.VALUE} (1, 0)")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidAlert("name must be a non-empty string (the trigger's {EVENT.NAME})")
    labels = _zabbix_tags(data.get("tags", []))
    for key in ("host", "severity"):
        if key in data:
            labels[key] = _string(data[key], key)
    message = _string(data.get("message", ""), "message")
    return {
        "fingerprint": event_id,
        "status": status.value,
        "name": name,
        "starts_at": _unix_s_ms(data.get("started_at"), "started_at"),
        "ends_at": (_unix_s_ms(data["ended_at"], "ended_at")
                    if data.get("ended_at") not in (None, "", 0, "0") else None),
        "labels": labels,
        "annotations": {"message": message} if message else {},
        "generator_url": _string(data.get("url", ""), "url"),
        "links": {},
    }


def _zabbix_tags(tags: Any) -> dict[str, str]:
    """{EVENT.TAGSJSON}'s [{"tag": .., "value": ..}] as labels; a repeated tag's values joined."""
    if not isinstance(tags, list):
        raise InvalidAlert('tags must be a list of {"tag": ..., "value": ...}')
    labels: dict[str, str] = {}
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict) or not isinstance(tag.get("tag"), str) or not tag["tag"]:
            raise InvalidAlert(f'tags[{i}] must be {{"tag": "name", "value": "..."}}')
        value = _string(tag.get("value", ""), f"tags[{i}].value")
        name = tag["tag"]
        labels[name] = f"{labels[name]}, {value}" if name in labels else value
    return labels


# -- shared checks ---------------------------------------------------------------------


def _version(data: dict[str, Any], expected: str, what: str) -> None:
    if str(data.get("version", "")) != expected:
        raise InvalidAlert(f"version {data.get('version')!r}: hookstream reads {what} "
                           f"version {expected}")


def _alerts(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise InvalidAlert("alerts must be a non-empty list")
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise InvalidAlert(f"alerts[{i}] must be an object")
        yield f"alerts[{i}]", alert


def _status(value: Any, where: str) -> str:
    if value not in (AlertStatus.FIRING.value, AlertStatus.RESOLVED.value):
        raise InvalidAlert(f"{where} must be firing or resolved, not {str(value)[:40]!r}")
    return str(value)


def _links(data: dict[str, Any], names: dict[str, str]) -> dict[str, str]:
    """The non-empty URLs of `data` among `names`, under AlertEvent.links' keys."""
    return {key: data[name] for name, key in names.items()
            if isinstance(data.get(name), str) and data[name]}


def _string(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidAlert(f"{where} must be a string")
    return str(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidAlert(f"{where} must map names to strings")
    return dict(value)


def _rfc3339_ms(value: Any, where: str) -> int | None:
    """An RFC 3339 time (with its offset) as Unix ms; None for the zero time."""
    if value == ZERO_TIME:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError
    except ValueError:
        raise InvalidAlert(f"{where} must be an RFC 3339 time such as "
                           f"2026-01-31T09:00:00Z, not {str(value)[:40]!r}") from None
    return None if parsed.year == 1 else int(parsed.timestamp() * 1000)


def _unix_s_ms(value: Any, where: str) -> int:
    """Unix seconds (a number or its digits) as Unix ms."""
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        seconds = float(value)
        if not 0 < seconds < 1e11:
            raise ValueError
    except ValueError:
        raise InvalidAlert(f"{where} must be Unix seconds, not {str(value)[:40]!r}") from None
    return int(seconds * 1000)
