"""Webhook definitions from YAML: validation with every error listed, secrets encrypted.

A file holds one webhook (a mapping), a list of them, or `{webhooks: [...]}`; several
YAML documents per file and directories of *.yaml / *.yml files are accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import yaml

from hookstream.errors import InvalidCriteria, InvalidDefinition, InvalidTemplate
from hookstream.matching import compile_criteria
from hookstream.policy import (
    ORDERINGS,
    RetryPolicy,
    SecretBox,
    blocked_reason,
    generate_secret,
    literal_ipv4,
    parse_delay,
    parse_networks,
    without_expired_secret,
)
from hookstream.records import OPERATIONAL_ITEMTYPE, OperationType, WebhookDefinition
from hookstream.render import ESCAPING_MODES, compile_templates

EVENTS = ("new", "update", "delete")
METHODS = ("post", "get", "put", "patch", "update")
SCHEMES = ("glpi", "standard", "both")
ITEMTYPES = frozenset(
    [
        "Ticket",
        "Change",
        "Problem",
        "TicketTask",
        "ChangeTask",
        "ProblemTask",
        "ITILFollowup",
        "ITILSolution",
        "TicketValidation",
        "ChangeValidation",
        "Computer",
        "Monitor",
        "NetworkEquipment",
        "Peripheral",
        "Phone",
        "Printer",
        "Software",
        "SoftwareLicense",
        "Rack",
        "Enclosure",
        "PDU",
        "PassiveDCEquipment",
        "Unmanaged",
        "Cable",
        "Appliance",
        "Budget",
        "Certificate",
        "Cluster",
        "Contact",
        "Contract",
        "Database",
        "Datacenter",
        "Document",
        "Domain",
        "Line",
        "Supplier",
        "Document_Item",
    ]
)
CUSTOM_ASSET = re.compile(r"^Glpi\\CustomAsset\\\w+Asset$")
WEBHOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# Set by hookstream, never by YAML: auto-disable's record, cleared by `webhooks enable`.
AUTO_DISABLE = ("disabled_reason", "disabled_at_ms", "enabled_at_ms")
# YAML keys that are not stored as-is: plain secrets and the readable retry schedule.
INPUT_ONLY = {"secret": str, "clientsecret": str, "retry_schedule": list}
STORED = {f.name for f in fields(WebhookDefinition)} - {
    "version",
    "secret_encrypted",
    "clientsecret_encrypted",
    "retry_schedule_s",
    "previous_secret_encrypted",  # set by rotate-secret only
    "previous_secret_until_ms",
    *AUTO_DISABLE,
}


def definition_files(path: Path) -> list[Path]:
    """The files a path of definitions stands for: itself, or a directory's YAML files."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))


def read_documents(path: Path, key: str = "webhooks") -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, raw mapping) for every definition in a file or directory: a mapping, a
    list of them or `{<key>: [...]}` per YAML document."""
    for file in definition_files(path):
        try:
            docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InvalidDefinition(str(file), [f"cannot read YAML: {e}"]) from e
        position = 0
        for doc in docs:
            items = doc.get(key, doc) if isinstance(doc, dict) else doc
            for raw in items if isinstance(items, list) else [items]:
                position += 1
                if raw is None:
                    continue
                yield f"{file}#{position}", raw


def valid_documents(path: Path, key: str, validate: Callable[[Any], list[str]]
                    ) -> list[dict[str, Any]]:
    """Every definition under `path` (see read_documents), each with a unique `id`, all
    valid: else InvalidDefinition lists every problem of every one (and nothing is used)."""
    errors: list[str] = []
    raws: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for source, raw in read_documents(path, key):
        problems = validate(raw)
        ident = str(raw.get("id", "")) if isinstance(raw, dict) else ""
        if ident in seen:
            problems.append(f"id {ident!r} is also used by {seen[ident]}")
        seen.setdefault(ident, source)
        errors += [f"{source} ({ident or 'no id'}): {p}" for p in problems]
        raws.append(raw)
    if errors:
        raise InvalidDefinition(str(path), errors)
    if not raws:
        raise InvalidDefinition(str(path), [f"no definition found (a list, or {{{key}: [...]}})"])
    return raws


def validate(raw: Any, tiers_s: Sequence[int], global_allow: Sequence[str] = ()) -> list[str]:
    """Every problem with one raw webhook mapping; empty when it is valid."""
    if not isinstance(raw, dict):
        return ["a webhook must be a mapping of fields"]
    errors = [f"unknown field {k!r}" for k in raw if k not in STORED and k not in INPUT_ONLY]
    for key in ("id", "instance", "name", "itemtype", "event", "url"):
        if not raw.get(key):
            errors.append(f"{key} is required")
    ident = str(raw.get("id", ""))
    if ident and not WEBHOOK_ID.match(ident):
        errors.append(f"id {ident!r} must be 1-100 of [A-Za-z0-9._-]")
    itemtype = str(raw.get("itemtype", ""))
    operational = itemtype == OPERATIONAL_ITEMTYPE
    if (itemtype and itemtype not in ITEMTYPES and not CUSTOM_ASSET.match(itemtype)
            and not operational):
        errors.append(f"unknown itemtype {itemtype!r}")
    if operational and raw.get("event") and raw["event"] not in set(OperationType):
        errors.append(f"unknown event {raw['event']!r}: {OPERATIONAL_ITEMTYPE} webhooks take "
                      f"{', '.join(OperationType)}")
    elif not operational and raw.get("event") and raw["event"] not in EVENTS:
        errors.append(f"unknown event {raw['event']!r}: GLPI raises only new, update, delete")
    method = str(raw.get("http_method", "post")).lower()
    if method not in METHODS:
        errors.append(f"http_method {method!r} is not one of {', '.join(METHODS)}")
    if raw.get("signature_scheme", "glpi") not in SCHEMES:
        errors.append(f"signature_scheme must be one of {', '.join(SCHEMES)}")
    if raw.get("retry_policy", RetryPolicy.GLPI) not in set(RetryPolicy):
        errors.append("retry_policy must be glpi or default")
    if raw.get("ordering", "none") not in ORDERINGS:
        errors.append(f"ordering {raw['ordering']!r} is not none or per_item (the deliveries of"
                      " one item one at a time, in event order)")
    if not isinstance(raw.get("skip_integration_users", False), bool):
        errors.append("skip_integration_users must be true or false")
    escaping = raw.get("escaping", "hookstream")
    if escaping not in ESCAPING_MODES:
        errors.append(f"escaping must be one of {', '.join(ESCAPING_MODES)}")
        escaping = "hookstream"
    errors += _numbers(raw)
    errors += _url(str(raw.get("url", "")), raw.get("allowed_networks", []), global_allow)
    errors += _oauth(raw)
    errors += _schedule(raw.get("retry_schedule"), tiers_s)
    if itemtype:
        try:
            compile_criteria(itemtype, _filter_text(raw.get("filter")) or None)
        except InvalidCriteria as e:
            errors.append(f"filter: {e}")
    headers = raw.get("custom_headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        errors.append("custom_headers must map header names to string templates")
        headers = {}
    try:
        compile_templates(
            str(raw.get("url", "")),
            {str(k): v for k, v in headers.items()},
            raw.get("payload") or None,
            bool(raw.get("use_default_payload", True)),
            escaping=str(escaping),
        )
    except InvalidTemplate as e:
        errors.append(f"template: {e}")
    return errors


def _numbers(raw: Mapping[str, Any]) -> list[str]:
    errors = []
    checks = [
        ("sent_try", 0, 100),
        ("timeout_s", 0.1, 300),
        ("max_in_flight", 0, 10_000),
        ("rate_limit_per_s", 0, 1_000_000),
        ("expiration", 0, 10**9),
        ("entities_id", 0, 10**12),
    ]
    for key, low, high in checks:
        value = raw.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            errors.append(f"{key} must be a number from {low} to {high}")
    return errors


def _url(url: str, allowed: Any, global_allow: Sequence[str]) -> list[str]:
    if not url:
        return []
    errors = []
    match = re.match(r"^(https?)://([^/?#{}]*)", url)
    if not match:
        return [f"url must start with http:// or https:// and a host, not {url[:60]!r}"]
    try:
        networks = parse_networks([*global_allow, *(allowed or [])])
    except (ValueError, TypeError) as e:
        return [f"allowed_networks: {e}"]
    host = match.group(2).rsplit("@", 1)[-1]
    host = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
    # Only IP literals can be judged now; host names are checked at connect time, on the
    # address actually connected to.
    address = literal_ipv4(host) or (host if ":" in host or host.replace(".", "").isdigit()
                                     else None)
    reason = blocked_reason(address, networks) if address else None
    if reason:
        errors.append(f"url targets {host} ({reason}); add it to allowed_networks to permit it")
    return errors


def _oauth(raw: Mapping[str, Any]) -> list[str]:
    if not raw.get("use_oauth"):
        return []
    missing = [k for k in ("oauth_url", "clientid", "clientsecret") if not raw.get(k)]
    errors = [f"use_oauth needs {k}" for k in missing]
    if raw.get("oauth_url") and not re.match(r"^https?://[^/]+", str(raw["oauth_url"])):
        errors.append("oauth_url must be an http(s) URL")
    return errors


def _schedule(schedule: Any, tiers_s: Sequence[int]) -> list[str]:
    if schedule is None:
        return []
    if not isinstance(schedule, list) or not schedule:
        return ["retry_schedule must be a non-empty list of delays such as [10s, 1m]"]
    errors = []
    for label in schedule:
        try:
            if parse_delay(str(label)) not in tiers_s:
                errors.append(f"retry_schedule: {label} is not a configured retry tier")
        except ValueError:
            errors.append(f"retry_schedule: {label!r} is not a delay such as 10s, 1m, 1h")
    return errors


def _filter_text(value: Any) -> str:
    if value in (None, "", []):
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def build(
    raw: Mapping[str, Any],
    box: SecretBox,
    previous: WebhookDefinition | None,
    now_ms: int,
) -> WebhookDefinition:
    """A validated mapping to a definition. An omitted secret keeps the previous one (or is
    generated as GLPI does); the version moves on only when something changed.

    A secret rotated out by `rotate-secret` is kept through its grace period and dropped
    once it is over (at `now_ms`). A `secret` that differs from the current one replaces
    it at once, and drops any rotated-out secret with it: use rotate-secret for a grace
    period."""
    values = {k: v for k, v in raw.items() if k in STORED}
    values["http_method"] = str(values.get("http_method", "post")).lower()
    values["filter"] = _filter_text(raw.get("filter"))
    values["custom_headers"] = {str(k): v for k, v in raw.get("custom_headers", {}).items()}
    values["allowed_networks"] = [str(n) for n in raw.get("allowed_networks", [])]
    if raw.get("retry_schedule"):
        values["retry_schedule_s"] = [parse_delay(str(d)) for d in raw["retry_schedule"]]
    for key in ("timeout_s", "rate_limit_per_s"):
        if key in values:
            values[key] = float(values[key])
    secret = raw.get("secret") or (box.decrypt(previous.secret_encrypted) if previous else "")
    client_secret = raw.get("clientsecret") or (
        box.decrypt(previous.clientsecret_encrypted) if previous else ""
    )
    replaced = previous is None or secret != box.decrypt(previous.secret_encrypted)
    rotation = None if replaced or previous is None else without_expired_secret(previous, now_ms)
    if previous is not None:
        values |= _kept_state(previous, bool(values.get("is_active", False)))
    candidate = WebhookDefinition(
        version=previous.version if previous else 1,
        secret_encrypted=box.encrypt(secret or generate_secret()),
        clientsecret_encrypted=box.encrypt(client_secret),
        previous_secret_encrypted=rotation.previous_secret_encrypted if rotation else "",
        previous_secret_until_ms=rotation.previous_secret_until_ms if rotation else 0,
        **values,
    )
    if previous is not None:
        same_secrets = (
            not replaced
            and client_secret == box.decrypt(previous.clientsecret_encrypted)
            and candidate.previous_secret_encrypted == previous.previous_secret_encrypted
        )
        if same_secrets and _public(candidate) == _public(previous):
            return previous
        candidate = replace(candidate, version=previous.version + 1)
    return candidate


def _kept_state(previous: WebhookDefinition, active_wanted: bool) -> dict[str, Any]:
    """What an apply keeps of hookstream's own state: an auto-disabled webhook stays
    disabled, with its reason, though its YAML says `is_active: true` (only `webhooks
    enable` brings it back); a YAML that disables it takes the webhook out of auto-disable."""
    kept: dict[str, Any] = {"enabled_at_ms": previous.enabled_at_ms}
    if previous.disabled_at_ms and active_wanted:
        kept |= {"is_active": False, "disabled_reason": previous.disabled_reason,
                 "disabled_at_ms": previous.disabled_at_ms}
    return kept


def _public(webhook: WebhookDefinition) -> dict[str, Any]:
    data = webhook.to_dict()
    for key in ("version", "secret_encrypted", "clientsecret_encrypted",
                "previous_secret_encrypted"):
        data.pop(key)
    return data


def load_definitions(
    path: Path,
    box: SecretBox,
    current: Mapping[str, WebhookDefinition],
    tiers_s: Sequence[int],
    global_allow: Sequence[str] = (),
    now_ms: int = 0,
) -> list[WebhookDefinition]:
    """Every webhook under `path`, validated; InvalidDefinition lists every error of every
    webhook, and then none of them is returned. `now_ms` judges whether a rotated-out secret
    of a webhook in `current` is past its grace period (0: none is)."""
    raws = valid_documents(path, "webhooks", lambda raw: validate(raw, tiers_s, global_allow))
    return [build(raw, box, current.get(str(raw["id"])), now_ms) for raw in raws]


def redacted(webhook: WebhookDefinition) -> dict[str, Any]:
    """A definition fit to show: secrets replaced by whether they are set."""
    data = _public(webhook)
    data["version"] = webhook.version
    data["secret"] = "<redacted>" if webhook.secret_encrypted else ""
    data["clientsecret"] = "<redacted>" if webhook.clientsecret_encrypted else ""
    # A rotated-out secret: only whether there is one, and until when it signs.
    data["previous_secret"] = "<redacted>" if webhook.previous_secret_encrypted else ""
    return data
