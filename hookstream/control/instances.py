"""GLPI instances from YAML: validated with every error listed, secrets encrypted, published.

A file holds one instance, a list, or `{instances: [...]}`:

    instances:
      - name: glpi-prod
        api_url: https://glpi.example.org/apirest.php
        app_token: ...            # or env HOOKSTREAM_INSTANCE_GLPI_PROD_APP_TOKEN
        user_token: ...           # or env HOOKSTREAM_INSTANCE_GLPI_PROD_USER_TOKEN
        secret: ...               # the secret GLPI signs its webhooks with; generated if omitted
        allowed_networks: [10.20.0.0/16]
        timestamp_tolerance_s: 3600
        timezone: Europe/Paris    # GLPI's timezone setting (IANA name); default UTC
        alerts:                   # `run alerts`: a route per monitoring source it accepts
          alertmanager: {auth: bearer, secret: ...}   # or env HOOKSTREAM_INSTANCE_GLPI_PROD_
          grafana: {auth: hmac, secret: ...}          #   ALERTS_GRAFANA_SECRET (and so on)
        integration_users: [7, glpi-bot]  # GLPI user ids or logins (resolved through api_url)

Omitted secrets keep their published value. The tokens and the secrets are stored
encrypted with the secret box, like webhook secrets, and shown nowhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from hookstream.alerting.auth import AlertAuth, AlertInstance, AlertRoute
from hookstream.config import Settings
from hookstream.errors import ConfigError, InvalidDefinition
from hookstream.io import codec_for, delivery_callback, flush, producer, read_all
from hookstream.policy import IngestInstance, SecretBox, generate_secret, parse_networks, secret_box
from hookstream.records import (
    DEFAULT_TOLERANCE_S,
    INSTANCES,
    AlertSource,
    InstanceRecord,
    is_timezone,
)

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # it appears in URLs and event keys
SECRETS = ("secret", "app_token", "user_token")
FIELDS = {"name", "api_url", "allowed_networks", "timestamp_tolerance_s", "comment", "timezone",
          "alerts", "integration_users", *SECRETS}
MIN_ALERT_SECRET = 16  # characters of an alert route's token or key
REDACTED = "<redacted>"
# GLPI user ids of logins, asked of the instance's API (connectors.glpi.user_ids_through_glpi);
# a login GLPI does not know is left out of the answer.
UserIds = Callable[[InstanceRecord, Sequence[str]], dict[str, int]]


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InvalidDefinition(str(path), [f"cannot read YAML: {e}"]) from e
    position = 0
    for doc in docs:
        items = doc.get("instances", doc) if isinstance(doc, dict) else doc
        for raw in items if isinstance(items, list) else [items]:
            position += 1
            if raw is not None:
                yield f"{path}#{position}", raw


def validate(raw: Any) -> list[str]:
    """Every problem with one raw instance mapping; empty when it is valid."""
    if not isinstance(raw, dict):
        return ["an instance must be a mapping of fields"]
    errors = [f"unknown field {k!r}" for k in raw if k not in FIELDS]
    name = raw.get("name")
    if not name:
        errors.append("name is required")
    elif not isinstance(name, str) or not NAME.match(name):
        errors.append(f"name {name!r} must be 1-63 of [a-z0-9_-], starting with a letter or digit")
    api_url = raw.get("api_url", "")
    if api_url and not re.match(r"^https?://[^/\s]+", str(api_url)):
        errors.append("api_url must be an http(s) URL such as https://glpi/apirest.php")
    for key in SECRETS:
        if key in raw and not isinstance(raw[key], str):
            errors.append(f"{key} must be a string")
    tolerance = raw.get("timestamp_tolerance_s", DEFAULT_TOLERANCE_S)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 60:
        errors.append("timestamp_tolerance_s must be an integer of at least 60")
    networks = raw.get("allowed_networks", [])
    if not isinstance(networks, list):
        errors.append("allowed_networks must be a list of CIDR networks")
    else:
        try:
            parse_networks([str(n) for n in networks])
        except ValueError as e:
            errors.append(f"allowed_networks: {e}")
    timezone = raw.get("timezone", "UTC")
    if not is_timezone(timezone):
        errors.append(f"timezone {timezone!r} is not an IANA time zone name such as Europe/Paris")
    users = raw.get("integration_users", [])
    if not isinstance(users, list) or not all(
            (isinstance(u, int) and not isinstance(u, bool) and u > 0)
            or (isinstance(u, str) and u) for u in users):
        errors.append("integration_users must be a list of GLPI user ids (positive integers) "
                      "or logins")
    elif any(isinstance(u, str) for u in users) and not api_url:
        errors.append("integration_users: logins are resolved through GLPI's API and this "
                      "instance has no api_url; give user ids instead")
    return errors + _alert_problems(raw.get("alerts", {}))


def _alert_problems(alerts: Any) -> list[str]:
    if not isinstance(alerts, dict):
        return ["alerts must map sources (alertmanager, grafana, zabbix) to {auth, secret}"]
    errors = []
    for source, route in alerts.items():
        where = f"alerts.{source}"
        if source not in set(AlertSource):
            errors.append(f"{where}: unknown source (alertmanager, grafana or zabbix)")
        elif not isinstance(route, dict) or set(route) - {"auth", "secret"}:
            errors.append(f"{where} must be {{auth: bearer|hmac, secret: ...}}")
        elif route.get("auth") not in set(AlertAuth):
            errors.append(f"{where}.auth must be bearer or hmac")
        elif "secret" in route and (not isinstance(route["secret"], str)
                                    or len(route["secret"]) < MIN_ALERT_SECRET):
            errors.append(f"{where}.secret must be a string of at least {MIN_ALERT_SECRET} "
                          "characters")
    return errors


def build(
    raw: Mapping[str, Any], box: SecretBox, previous: InstanceRecord | None,
    user_ids: UserIds | None = None,
) -> InstanceRecord:
    """A validated mapping to a record; the version moves on only when something changed.
    Logins among `integration_users` are resolved with `user_ids`."""

    def secret_of(stored: str) -> str:
        return box.decrypt(stored) if stored else ""

    def secret(key: str, stored: str) -> str:
        given = raw.get(key)
        return str(given) if given else secret_of(stored)

    old = previous or InstanceRecord(name=str(raw["name"]), version=0, secret_encrypted="")
    plain = {
        "secret": secret("secret", old.secret_encrypted) or generate_secret(),
        "app_token": secret("app_token", old.app_token_encrypted),
        "user_token": secret("user_token", old.user_token_encrypted),
    }
    routes: dict[str, dict[str, str]] = raw.get("alerts", {})
    alert_secrets = {
        source: str(route.get("secret") or secret_of(old.alert_secrets_encrypted.get(source, "")))
        for source, route in routes.items()
    }
    candidate = InstanceRecord(
        name=str(raw["name"]),
        version=max(old.version, 1),
        secret_encrypted=box.encrypt(plain["secret"]),
        api_url=str(raw.get("api_url", "")),
        app_token_encrypted=box.encrypt(plain["app_token"]),
        user_token_encrypted=box.encrypt(plain["user_token"]),
        allowed_networks=[str(n) for n in raw.get("allowed_networks", [])],
        timestamp_tolerance_s=int(raw.get("timestamp_tolerance_s", DEFAULT_TOLERANCE_S)),
        comment=str(raw.get("comment", "")),
        timezone=str(raw.get("timezone", "UTC")),
        alert_auth={source: str(route["auth"]) for source, route in routes.items()},
        alert_secrets_encrypted={s: box.encrypt(v) for s, v in alert_secrets.items() if v},
    )
    candidate = replace(candidate, integration_users=_integration_users(raw, candidate, user_ids))
    if previous is None:
        return candidate
    same = all(
        plain[k] == secret(k, getattr(previous, f"{k}_encrypted")) for k in SECRETS
    ) and alert_secrets == {
        s: secret_of(v) for s, v in previous.alert_secrets_encrypted.items()
    } and redacted(candidate) == redacted(previous)
    return previous if same else replace(candidate, version=previous.version + 1)


def _integration_users(raw: Mapping[str, Any], instance: InstanceRecord,
                       user_ids: UserIds | None) -> list[int]:
    """The ids given and those of the logins given (asked of GLPI), sorted, once each."""
    given = raw.get("integration_users", [])
    ids = {u for u in given if isinstance(u, int)}
    logins = sorted({u for u in given if isinstance(u, str)})
    if logins:
        if user_ids is None:
            raise InvalidDefinition(instance.name, ["integration_users: logins cannot be "
                                                    "resolved here; give user ids instead"])
        found = user_ids(instance, logins)
        unknown = [login for login in logins if login not in found]
        if unknown:
            raise InvalidDefinition(instance.name, [
                f"integration_users: GLPI knows no user with login {', '.join(unknown)}"])
        ids |= set(found.values())
    return sorted(ids)


def load_instances(
    path: Path, box: SecretBox, current: Mapping[str, InstanceRecord],
    user_ids: UserIds | None = None,
) -> list[InstanceRecord]:
    """Every instance in `path`, validated; InvalidDefinition lists every error of every one."""
    errors: list[str] = []
    raws: list[dict[str, Any]] = []
    seen: set[str] = set()
    for source, raw in _documents(path):
        problems = validate(raw)
        name = str(raw.get("name", "")) if isinstance(raw, dict) else ""
        if name and name in seen:
            problems.append(f"name {name!r} appears twice")
        seen.add(name)
        errors += [f"{source} ({name or 'no name'}): {p}" for p in problems]
        raws.append(raw)
    if errors:
        raise InvalidDefinition(str(path), errors)
    if not raws:
        raise InvalidDefinition(str(path), ["no instance found"])
    return [build(raw, box, current.get(str(raw["name"])), user_ids) for raw in raws]


def redacted(instance: InstanceRecord) -> dict[str, Any]:
    """An instance fit to show: each secret replaced by whether it is set."""
    data = instance.to_dict()
    for key in SECRETS:
        data[key] = REDACTED if data.pop(f"{key}_encrypted") else ""
    data["alert_secrets"] = dict.fromkeys(data.pop("alert_secrets_encrypted"), REDACTED)
    return data


def ingest_view(instance: InstanceRecord, box: SecretBox) -> IngestInstance:
    """What the ingest endpoint needs: the decrypted webhook secret and parsed networks."""
    return IngestInstance(
        name=instance.name,
        secret=box.decrypt(instance.secret_encrypted),
        networks=tuple(parse_networks(instance.allowed_networks)),
        tolerance_s=instance.timestamp_tolerance_s,
    )


def alert_view(
    instance: InstanceRecord, box: SecretBox, env: Mapping[str, str] | None = None
) -> AlertInstance:
    """What `run alerts` needs: each route's scheme and decrypted secret, a secret in the
    environment (HOOKSTREAM_INSTANCE_<NAME>_ALERTS_<SOURCE>_SECRET) taking precedence."""
    env = os.environ if env is None else env
    prefix = f"HOOKSTREAM_INSTANCE_{instance.name.upper().replace('-', '_')}_ALERTS_"
    stored = instance.alert_secrets_encrypted
    return AlertInstance(instance.name, {
        source: AlertRoute(scheme, env.get(f"{prefix}{source.upper()}_SECRET")
                           or (box.decrypt(stored[source]) if stored.get(source) else ""))
        for source, scheme in instance.alert_auth.items()
    })


def api_tokens(
    instance: InstanceRecord, box: SecretBox, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(app token, user token): from the environment when set there, else the definition.

    The variables are HOOKSTREAM_INSTANCE_<NAME>_APP_TOKEN and ..._USER_TOKEN, the name
    upper-cased with '-' as '_'. Tokens are never taken from the command line.
    """
    env = os.environ if env is None else env
    prefix = f"HOOKSTREAM_INSTANCE_{instance.name.upper().replace('-', '_')}_"
    app = env.get(prefix + "APP_TOKEN") or box.decrypt(instance.app_token_encrypted)
    user = env.get(prefix + "USER_TOKEN") or box.decrypt(instance.user_token_encrypted)
    if not app or not user:
        raise ConfigError(
            f"instance {instance.name}: no API app token and user token "
            f"(set them in the instance definition or {prefix}APP_TOKEN / {prefix}USER_TOKEN)"
        )
    return app, user


# --- the compacted topic -------------------------------------------------------------------


def current_instances(settings: Settings) -> dict[str, InstanceRecord]:
    """The instances topic read whole: the latest record of every live instance."""
    codec, table = codec_for(settings), dict[str, InstanceRecord]()
    for msg in read_all(settings, settings.topic(INSTANCES)):
        name = (msg.key() or b"").decode()
        if msg.value() is None:
            table.pop(name, None)
        else:
            table[name] = codec.decode(msg.value(), msg.headers(), InstanceRecord)
    return table


def _publish(settings: Settings, records: list[tuple[str, InstanceRecord | None]]) -> None:
    topic, codec, prod = settings.topic(INSTANCES), codec_for(settings), producer(settings)
    errors: list[str] = []
    for key, record in records:
        value, headers = codec.encode(record, topic) if record is not None else (None, None)
        prod.produce(topic, value, key.encode(), headers=headers,
                     on_delivery=delivery_callback(errors))
    flush(prod)
    if errors:
        raise InvalidDefinition(topic, [f"not published: {e}" for e in errors])


def apply_instances(settings: Settings, path: Path, user_ids: UserIds | None = None
                    ) -> list[tuple[InstanceRecord, str]]:
    """Validate every instance in `path`, then publish those that changed."""
    current = current_instances(settings)
    records = load_instances(path, secret_box(settings), current, user_ids)
    changed = [r for r in records if current.get(r.name) is not r]
    _publish(settings, [(r.name, r) for r in changed])
    return [
        (r, ("created" if r.name not in current else "updated") if r in changed else "unchanged")
        for r in records
    ]


def delete_instance(settings: Settings, name: str) -> bool:
    if name not in current_instances(settings):
        return False
    _publish(settings, [(name, None)])
    return True


def list_instances(settings: Settings) -> list[dict[str, Any]]:
    return [redacted(r) for _, r in sorted(current_instances(settings).items())]
