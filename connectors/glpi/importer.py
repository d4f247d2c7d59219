"""`hookstream glpi import-webhooks`: a GLPI's existing webhooks as hookstream YAML.

Each GLPI webhook (and its filter, a CriteriaFilter row of itemtype Webhook) becomes one
YAML document that `hookstream webhooks apply` accepts. What cannot be carried is written
as a comment beside the definition and returned as a note for the terminal:

- the secret: GLPI keeps it encrypted and its API never returns it; without one,
  `webhooks apply` generates a new secret, so receivers that verify GLPI's signature
  need the old one set by hand;
- the OAuth client secret, for the same reason;
- a filter hookstream cannot evaluate (a search option it does not know);
- anything else `webhooks apply` would refuse (the error is quoted).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connectors.glpi.client import GlpiApiError, GlpiClient
from hookstream.control.webhooks import validate
from hookstream.errors import InvalidCriteria
from hookstream.matching import compile_criteria

COPIED = ("name", "comment", "webhookcategories_id", "entities_id", "itemtype", "event",
          "url", "payload", "use_cra_challenge", "use_oauth", "oauth_url", "clientid",
          "sent_try", "expiration", "save_response_body", "log_in_item_history")
REQUIRED = ("id", "instance", "name", "itemtype", "event", "url")
BOOLEANS = ("is_recursive", "is_active", "use_default_payload", "use_cra_challenge",
            "use_oauth", "save_response_body", "log_in_item_history")


@dataclass
class Imported:
    glpi_id: int
    definition: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what was not carried, and why
    commented: bool = False  # `webhooks apply` would refuse it: written as comments

    def yaml_text(self) -> str:
        comments = "".join(
            f"# NOT CARRIED: {' '.join(note.split())}\n" for note in self.notes  # one line
        )
        body = yaml.safe_dump(self.definition, sort_keys=False, allow_unicode=True)
        if self.commented:
            body = "".join(f"# {line}\n" for line in body.splitlines())
        return f"# GLPI webhook {self.glpi_id}\n{comments}{body}"


def _filter_of(criteria: Iterable[dict[str, Any]], glpi_id: int) -> Any:
    for row in criteria:
        if row.get("itemtype") == "Webhook" and int(row.get("items_id", -1)) == glpi_id:
            text = row.get("search_criteria") or ""
            try:
                return json.loads(text) if isinstance(text, str) and text else text or None
            except ValueError:
                return text
    return None


def convert(
    instance: str, hook: dict[str, Any], criteria: Sequence[dict[str, Any]],
    tiers_s: Sequence[int],
) -> Imported:
    """One GLPI webhook row to a hookstream definition and its notes (pure)."""
    glpi_id = int(hook["id"])
    out: dict[str, Any] = {"id": f"{instance}-{glpi_id}", "instance": instance}
    notes: list[str] = []
    for key in COPIED:
        value = hook.get(key)
        if value not in (None, ""):
            out[key] = bool(value) if key in BOOLEANS else value
    for key in ("is_recursive", "is_active", "use_default_payload"):
        if key in hook:
            out[key] = bool(hook[key])
    out["http_method"] = str(hook.get("http_method") or "post").lower()
    out["retry_policy"] = "glpi"  # GLPI retried any status >= 400: said, not left to a default
    headers = hook.get("custom_headers")
    if isinstance(headers, str) and headers.strip():
        try:
            headers = json.loads(headers)
        except ValueError:
            notes.append(f"custom_headers {headers[:60]!r}: not JSON")
            headers = None
    if isinstance(headers, dict) and headers:
        out["custom_headers"] = {str(k): str(v) for k, v in headers.items()}
    notes.append("secret: GLPI's API never returns it; set `secret:` to GLPI's value or "
                 "receivers that verify X-GLPI-signature will see a new one")
    blocking = False
    if hook.get("use_oauth"):
        # `webhooks apply` requires the client secret of an OAuth webhook: commented out
        # until an admin adds it.
        notes.append("clientsecret: GLPI's API never returns it; add `clientsecret:` and "
                     "uncomment this webhook")
        blocking = True
    found = _filter_of(criteria, glpi_id)
    if found:
        try:
            compile_criteria(str(hook.get("itemtype")), json.dumps(found))
            out["filter"] = found
        except InvalidCriteria as e:
            notes.append(f"filter {json.dumps(found)[:200]}: {e}")
    # Anything else `webhooks apply` would refuse: an optional field is left out, quoted;
    # otherwise (a URL into a private network, say) the whole webhook is commented out.
    for problem in validate({**out, "secret": "x" * 40, "clientsecret": "x"}, tiers_s):
        named = re.match(r"^(?:unknown field ')?(\w+)", problem)
        field_name = named.group(1) if named else ""
        if field_name in out and field_name not in REQUIRED:
            notes.append(f"{field_name}: {out.pop(field_name)!r}: {problem}")
        else:
            notes.append(problem)
            blocking = True
    return Imported(glpi_id, out, notes, commented=blocking)


def import_webhooks(client: GlpiClient, tiers_s: Sequence[int]) -> list[Imported]:
    hooks = client.webhooks()
    try:
        criteria = list(client.list_items("CriteriaFilter"))
    except GlpiApiError as e:  # filters unreadable: say so on every webhook, lose nothing
        imported = [convert(client.instance, hook, [], tiers_s) for hook in hooks]
        for item in imported:
            item.notes.append(f"filter: GLPI's API did not list CriteriaFilter ({e.code} "
                              f"{e.message}); copy this webhook's filter by hand")
        return imported
    return [convert(client.instance, hook, criteria, tiers_s) for hook in hooks]


def write(imported: Sequence[Imported], directory: Path, instance: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{instance}-webhooks.yaml"
    path.write_text("---\n" + "---\n".join(item.yaml_text() for item in imported))
    return path


def disable_in_glpi(client: GlpiClient, imported: Sequence[Imported]) -> int:
    """Switch the imported webhooks off in GLPI (after hookstream has them)."""
    count = 0
    for item in imported:
        if item.definition.get("is_active") and not item.commented:
            client.update_item("Webhook", item.glpi_id, {"is_active": 0})
            count += 1
    return count
